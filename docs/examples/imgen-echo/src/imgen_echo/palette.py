"""The `palette` backend: a sketch of a backend for a remote service, for the tutorial.

It calls a made-up "palette" HTTP API with the standard library, so that it runs anywhere. A
real backend would use the service's async SDK instead; everything else is what a backend for
a real API needs: a secret, retryable errors, and errors that never reveal the secret.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr

from imgen import AsyncImageGenerationModel, RuntimeParameter, env_field
from imgen.errors import (
    ConfigurationError,
    MissingCredentialsError,
    RequestRefusedError,
    UnexpectedResponseError,
    translate_refusals,
)
from imgen.retry import parse_retry_after


class PaletteImageGeneration(AsyncImageGenerationModel):
    """Images from the palette service's HTTP API."""

    backend_name: ClassVar[str] = "palette"

    model: str = Field("palette-1", description="The service's model id.")
    base_url: RuntimeParameter[str] = env_field(
        "PALETTE_BASE_URL", description="The API root, e.g. https://api.palette.example."
    )
    api_key: RuntimeParameter[SecretStr] = env_field(
        "PALETTE_API_KEY", description="The service's API key.", secret=True
    )

    @property
    def model_name(self) -> str:
        """The service's model id."""
        return self.model

    def load(self) -> None:
        """Check the settings before any request is made."""
        if self.api_key is None or not self.api_key.get_secret_value():
            raise MissingCredentialsError(self.backend_name, "api_key", "PALETTE_API_KEY")
        if not self.base_url:
            raise ConfigurationError("The palette backend needs base_url or PALETTE_BASE_URL.")
        super().load()

    async def agenerate(
        self, input: str, num_generations: int = 1, style: Literal["flat", "pastel"] = "flat"
    ) -> list[dict[str, Any]]:
        """Ask the service for `num_generations` images of one prompt.

        Args:
            input: The prompt.
            num_generations: Images to generate, in one request.
            style: The palette style.
        """
        body = {"model": self.model, "prompt": input, "n": num_generations, "style": style}
        reply = await asyncio.to_thread(self._post, "/v1/images", body)
        return [{"images": [item["b64"] for item in reply["data"]], "format": "png"}]

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        assert self.api_key is not None and self.base_url is not None  # checked in load()
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.api_key.get_secret_value()}",
                "Content-Type": "application/json",
            },
        )
        # An error status becomes a RequestRefusedError that chains nothing: urllib's error
        # still holds the request, and with it the Authorization header.
        with (
            translate_refusals(urllib.error.HTTPError, self._refused),
            # The engine's timeout ends the wait; this one also ends the request itself.
            urllib.request.urlopen(request, timeout=self.timeout) as response,
        ):
            text = response.read().decode(errors="replace")
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
        raise UnexpectedResponseError(
            f"The palette service answered {response.status} with something that is not JSON: "
            f"{text[:80]!r}",
            secrets=[self.api_key.get_secret_value()],
        )

    def _refused(self, exc: urllib.error.HTTPError) -> RequestRefusedError:
        """Describe an error status by what the service said; the key is masked if echoed."""
        said = exc.read().decode(errors="replace")[:200]
        assert self.api_key is not None
        return RequestRefusedError(
            f"The palette service refused the request ({exc.code} {exc.reason}): {said}",
            # The engine reads these two: 429 and 5xx are retried, after Retry-After if given.
            status_code=exc.code,
            retry_after=parse_retry_after(exc.headers.get("Retry-After")),
            secrets=[self.api_key.get_secret_value()],
        )
