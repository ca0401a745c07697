from membership_site.errors import ConflictError, InvalidInputError, NotFoundError


class InvalidScopesError(InvalidInputError):
    code = "invalid_scopes"
    title = "Unknown scopes"


class InvalidIpAllowlistError(InvalidInputError):
    code = "invalid_ip_allowlist"
    title = "The IP allowlist holds something that is not a CIDR range"


class InvalidRateLimitError(InvalidInputError):
    code = "invalid_rate_limit"
    title = "The rate limit is not of the form '<number>/<sec|min|hour|day>'"


class ApiKeyNotFoundError(NotFoundError):
    code = "api_key_not_found"
    title = "No such API key"


class ApiKeyAlreadyRevokedError(ConflictError):
    code = "api_key_revoked"
    title = "The API key is already revoked"


class OAuthClientExistsError(ConflictError):
    code = "oauth_client_exists"
    title = "The integration already has an OAuth2 client"
