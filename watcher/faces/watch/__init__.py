"""faces/watch"""
