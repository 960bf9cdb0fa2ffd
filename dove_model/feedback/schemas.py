"""The ``/feedback`` response body."""

from __future__ import annotations

from pydantic import BaseModel


class FeedbackResponse(BaseModel):
    feedback_id: str
    query_id: str
    image_id: str
    relevant: bool
    rank: int  # the image's 1-based position in that search's results
