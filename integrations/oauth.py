"""django-oauth-toolkit validator: only clients linked to an active integration get tokens."""

from oauth2_provider.oauth2_validators import OAuth2Validator

from .models import Integration


class IntegrationOAuth2Validator(OAuth2Validator):
    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs) -> bool:
        if not super().validate_grant_type(client_id, grant_type, client, request, *args, **kwargs):
            return False
        return Integration.objects.filter(oauth_application=client, is_active=True).exists()
