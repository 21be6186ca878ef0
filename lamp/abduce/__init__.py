"""lamp.abduce"""
