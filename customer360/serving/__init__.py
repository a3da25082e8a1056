"""Serving: the published read-only copy of the marts, the profile API and the dashboard."""

from customer360.serving.publish import PublishResult, ServingPublishError, publish_serving_copy

__all__ = ["PublishResult", "ServingPublishError", "publish_serving_copy"]
