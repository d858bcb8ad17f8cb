"""The `palette` backend: a sketch of a backend for a remote service, for the tutorial.

It calls a made-up "palette" HTTP API with `httpx2`, the HTTP client the openai and
huggingface_hub SDKs are built on (with `httpx` the code is the same). It has what a backend
for a real API needs: a secret, a setting with a default, a client opened in `load()` and
closed in `unload()`, retryable errors, and errors that never reveal the secret.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, SecretStr

from imgen import AsyncImageGenerationModel, RuntimeParameter, env_field
from imgen.errors import (
    MissingCredentialsError,
    RequestRefusedError,
    UnexpectedResponseError,
    translate_refusals,
)
from imgen.images import EncodedImage, images_output
from imgen.retry import parse_retry_after


class PaletteImageGeneration(AsyncImageGenerationModel):
    """Images from the palette service's HTTP API."""

    backend_name: ClassVar[str] = "palette"

    model: str = Field("palette-1", description="The service's model id.")
    base_url: RuntimeParameter[str] = env_field(
        "PALETTE_BASE_URL",
        description="The API root; PALETTE_BASE_URL overrides the public one.",
        default="https://api.palette.example",
    )
    api_key: RuntimeParameter[SecretStr] = env_field(
        "PALETTE_API_KEY", description="The service's API key.", secret=True
    )
    _client: Any = PrivateAttr(None)  # an httpx2.AsyncClient while loaded

    @property
    def model_name(self) -> str:
        """The service's model id."""
        return self.model

    def load(self) -> None:
        """Check the key, then open the HTTP client; nothing is sent yet."""
        if self.api_key is None or not self.api_key.get_secret_value():
            raise MissingCredentialsError(self.backend_name, "api_key", "PALETTE_API_KEY")
        import httpx2  # here, not at the top: discovery imports the plugin's modules

        self._client = httpx2.AsyncClient(
            base_url=self.base_url or "",
            headers={"Authorization": f"Bearer {self.api_key.get_secret_value()}"},
        )
        super().load()

    def unload(self) -> None:
        """Close the client on the loop its connections belong to, then stop that loop."""
        if self._client is not None:
            self.run_on_own_loop(self._client.aclose())
            self._client = None
        super().unload()

    async def agenerate(
        self, input: str, num_generations: int = 1, style: Literal["flat", "pastel"] = "flat"
    ) -> list[dict[str, Any]]:
        """Ask the service for `num_generations` images of one prompt.

        Args:
            input: The prompt.
            num_generations: Images to generate, in one request.
            style: The palette style.
        """
        import httpx2

        # An error status becomes a RequestRefusedError that chains nothing: httpx2's error
        # holds the request, and with it the Authorization header.
        with translate_refusals(httpx2.HTTPStatusError, self._refused):
            response = await self._client.post(
                f"/v1/models/{self.model}/images",
                json={"prompt": input, "n": num_generations, "style": style},
                # The engine's timeout ends the wait; this one also ends the request itself.
                timeout=self.timeout,
            )
            response.raise_for_status()
        try:
            data = response.json()["data"]
        except (ValueError, KeyError, TypeError):
            data = None
        if not isinstance(data, list):
            raise UnexpectedResponseError(
                f"The palette service answered {response.status_code} with something that is "
                f"not an images response: {response.text[:80]!r}",
                secrets=[self.api_key.get_secret_value() if self.api_key else None],
            )
        # Bytes as received: the service's base64, handed on untouched, in its real format.
        return [images_output([EncodedImage.received(item["b64"]) for item in data])]

    def _refused(self, exc: Any) -> RequestRefusedError:
        """Describe an error status by what the service said; the key is masked if echoed."""
        response = exc.response
        return RequestRefusedError(
            f"The palette service refused the request ({response.status_code}): "
            f"{response.text[:200]}",
            # The engine reads these two: 429 and 5xx are retried, after Retry-After if given.
            status_code=response.status_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            secrets=[self.api_key.get_secret_value() if self.api_key else None],
        )
