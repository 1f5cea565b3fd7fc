"""postprocessors"""
