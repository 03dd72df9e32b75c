"""Prompts as audio: values said in words (say.py), text rendered to speech (tts.py), media URIs (prompts.py)."""
