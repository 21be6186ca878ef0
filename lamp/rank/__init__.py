"""lamp.rank"""
