"""lamp.eval"""
