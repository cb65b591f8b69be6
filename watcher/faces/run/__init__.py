"""faces/run"""
