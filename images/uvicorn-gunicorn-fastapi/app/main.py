"""The image's own app, served until an app's `COPY ./app /app` brings its own."""
import sys

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def read_root():
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {"message": f"Hello from FastAPI on Uvicorn with Gunicorn (local stand-in), Python {version}"}
