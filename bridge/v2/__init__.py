"""The V2 phase-out: admit, warn or refuse legacy sockets, and see who still uses V2.

- ``policy``: the modes (``open``, ``warn``, ``closed``) and what a legacy client is told; pure.
- ``usage``: usage records and the report built from them; pure.
- ``store``: where the policy and usage live (memory, or Redis for every node).
- ``control``: one node's side (``V2Control``): admission, and counting legacy use.
- ``http``: ``/v2/mode``, ``/v2/usage`` and ``/v2/dead-letters``.
- ``cli``: ``aether-bridge v2 mode|usage|dead-letters``.
"""
