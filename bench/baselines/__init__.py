"""Baseline servers the project is measured against, each a small, honest use of its library.

All of them do the minimum a gateway must do per message: parse the client's JSON, stamp
``from_id``/``group_id``/``sent_at``, encode once, and fan out to the group (sender included).
"""
