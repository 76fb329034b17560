"""Ours beside the session persistence of LangGraph, the OpenAI Agents SDK and Google ADK.

Run ``./run bench --peers`` (its own venv, ``.venv-peers``, with the peers installed from
``bench/peers/requirements.txt``); see the "Peers" section of ``bench/README.md``.
"""
