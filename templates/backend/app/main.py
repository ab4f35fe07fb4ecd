"""The app's HTTP API. Every route lives under /api (the frontend's dev server proxies /api here).

Run: uvicorn app.main:app --host 127.0.0.1 --port ${PORT:-8000}
"""

import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.middleware.cors import CORSMiddleware
from pydantic import BaseModel, Field

from app.db import get_db, init_db


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    init_db()
    yield


app = FastAPI(title="App API", lifespan=lifespan)

# The preview reaches the API through the frontend's proxy (same origin), so CORS only matters when
# the frontend calls the backend directly (VITE_API_URL). CORS_ORIGINS: comma-separated, or "*".
_origins = os.environ.get("CORS_ORIGINS", "http://localhost:5173,http://127.0.0.1:5173")
app.add_middleware(
    CORSMiddleware,
    allow_origins=[o.strip() for o in _origins.split(",") if o.strip()],
    allow_credentials=False,
    allow_methods=["*"],
    allow_headers=["*"],
)

api = APIRouter(prefix="/api")


class Health(BaseModel):
    status: str


class ItemCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class Item(BaseModel):
    id: int
    name: str
    created_at: str


@api.get("/health")
def health() -> Health:
    return Health(status="ok")


@api.get("/items")
def list_items(db: sqlite3.Connection = Depends(get_db)) -> list[Item]:
    rows = db.execute("SELECT id, name, created_at FROM items ORDER BY id").fetchall()
    return [Item(**dict(row)) for row in rows]


@api.post("/items", status_code=201)
def create_item(body: ItemCreate, db: sqlite3.Connection = Depends(get_db)) -> Item:
    row = db.execute(
        "INSERT INTO items (name) VALUES (?) RETURNING id, name, created_at", (body.name.strip(),)
    ).fetchone()
    return Item(**dict(row))


@api.get("/items/{item_id}")
def get_item(item_id: int, db: sqlite3.Connection = Depends(get_db)) -> Item:
    row = db.execute("SELECT id, name, created_at FROM items WHERE id = ?", (item_id,)).fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return Item(**dict(row))


@api.delete("/items/{item_id}", status_code=204)
def delete_item(item_id: int, db: sqlite3.Connection = Depends(get_db)) -> None:
    cur = db.execute("DELETE FROM items WHERE id = ?", (item_id,))
    if cur.rowcount == 0:
        raise HTTPException(status_code=404, detail="Item not found")


app.include_router(api)
