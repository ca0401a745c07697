from membership_site.errors import ConflictError, InvalidInputError, NotFoundError


class WebhookEndpointNotFoundError(NotFoundError):
    code = "webhook_endpoint_not_found"
    title = "No such webhook endpoint in this program"


class DeliveryNotFoundError(NotFoundError):
    code = "webhook_delivery_not_found"
    title = "No such webhook delivery in this program"


class EventNotFoundError(NotFoundError):
    code = "event_not_found"
    title = "No such event in this program"


class InvalidWebhookUrlError(InvalidInputError):
    code = "invalid_webhook_url"
    title = "Not a usable webhook URL"


class WebhookUrlNotAllowedError(InvalidInputError):
    """The URL resolves to a private, loopback, link-local or reserved address."""

    code = "webhook_url_not_allowed"
    title = "Webhook URLs may not point at private or internal addresses"


class UnknownEventTypeError(InvalidInputError):
    code = "unknown_event_type"
    title = "Not an event type of the catalog"


class InvalidCursorError(InvalidInputError):
    code = "invalid_cursor"
    title = "The cursor is not valid; use a cursor the API returned"


class EndpointLimitReachedError(ConflictError):
    code = "webhook_endpoint_limit"
    title = "The program has as many webhook endpoints as allowed"


class EndpointDisabledError(ConflictError):
    code = "webhook_endpoint_disabled"
    title = "The webhook endpoint is disabled; enable it first"


class DeliveryInProgressError(ConflictError):
    code = "webhook_delivery_in_progress"
    title = "The delivery is being sent right now"
