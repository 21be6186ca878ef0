"""lamp.retrieval"""
