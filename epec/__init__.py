"""epec"""
