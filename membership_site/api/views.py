"""Base classes for every API view.

They add what every endpoint shares: the ``Idempotency-Key`` mechanism for POSTs, the
program and actor of the calling integration, and dropping the URL version from handler
arguments. Views declare ``scope_area`` (see ``permissions.HasScope``).
"""

from __future__ import annotations

from django.db import transaction
from django.http import HttpResponseBase
from rest_framework.generics import GenericAPIView
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from membership_site.actors import Actor

from . import idempotency
from .parsers import raise_for_invalid_url_text


class _ServerError(Exception):
    def __init__(self, response) -> None:
        self.response = response


class ApiDispatchMixin:
    scope_area: str | None = None
    required_scopes: dict[str, str] | None = None

    @property
    def program(self):
        return self.request.auth.program

    @property
    def actor(self) -> Actor:
        return self.request.auth.actor

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # Text PostgreSQL cannot store never reaches a query (see parsers).
        raise_for_invalid_url_text(request, kwargs)

    def _call_handler(self, request, *args, **kwargs):
        method = request.method.lower()
        handler = (
            getattr(self, method, self.http_method_not_allowed)
            if method in self.http_method_names
            else self.http_method_not_allowed
        )
        return handler(request, *args, **kwargs)

    def _call_claimed(self, claim, request, *args, **kwargs):
        """Run the handler and store its response in one transaction."""
        try:
            with transaction.atomic():
                try:
                    response = self._call_handler(request, *args, **kwargs)
                except Exception as exc:
                    response = self.handle_exception(exc)
                if response.status_code >= 500:
                    raise _ServerError(response)
                idempotency.complete(claim, response)
                return response
        except _ServerError as error:
            idempotency.release(claim)
            return error.response
        except BaseException:
            idempotency.release(claim)
            raise

    def dispatch(self, request, *args, **kwargs):
        # DRF's APIView.dispatch, with the idempotency claim between authentication and
        # the handler.
        self.args = args
        self.kwargs = kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            self.initial(request, *args, **kwargs)
            claim = idempotency.claim(request)
            if isinstance(claim, HttpResponseBase):
                response = claim
            elif claim is None:
                response = self._call_handler(request, *args, **kwargs)
            else:
                response = self._call_claimed(claim, request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response


class ApiView(ApiDispatchMixin, APIView):
    pass


class ApiGenericView(ApiDispatchMixin, GenericAPIView):
    pass


class ApiViewSet(ApiDispatchMixin, GenericViewSet):
    pass
