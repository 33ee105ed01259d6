"""Swagger UI at /docs, served from the installed fastapi-swagger package: works offline."""

from fastapi import FastAPI
from fastapi_swagger import patch_fastapi


def mount_docs(app: FastAPI) -> None:
    # Until the site's own pages exist, / leads to the API documentation.
    patch_fastapi(
        app,
        docs_url="/docs",
        redirect_from_root_to_docs=True,
        title="boxoffice API",
        swagger_ui_parameters={"persistAuthorization": True, "displayRequestDuration": True},
    )
