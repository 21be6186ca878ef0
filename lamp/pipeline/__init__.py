"""lamp.pipeline"""
