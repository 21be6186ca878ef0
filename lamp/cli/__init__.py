"""lamp.cli"""
