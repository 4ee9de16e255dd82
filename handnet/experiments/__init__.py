"""Experiments that answer design questions with measurements; each is a runnable module."""
