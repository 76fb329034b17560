"""The HTTP approvals API served by ``kaizen serve``, and the approver inbox page.

Example:
    >>> from kaizen.api import create_app, hash_token
    >>> app = create_app("sqlite:///kaizen.db", tokens={hash_token("s3cret"): "lead-456"})
"""

from kaizen.api.app import create_app
from kaizen.api.auth import TokenConfigError, TokenStore, hash_token

__all__ = ["TokenConfigError", "TokenStore", "create_app", "hash_token"]
