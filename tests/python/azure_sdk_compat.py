"""Reads what open-replit wrote and writes what open-replit must read, with Microsoft's SDK.

Usage: azure_sdk_compat.py CONNECTION_STRING CONTAINER read NAME EXPECTED_HEX
       azure_sdk_compat.py CONNECTION_STRING CONTAINER write NAME CONTENT_HEX
       azure_sdk_compat.py CONNECTION_STRING CONTAINER bulk-write PREFIX COUNT SIZE
       azure_sdk_compat.py CONNECTION_STRING CONTAINER bulk-read PREFIX
       azure_sdk_compat.py CONNECTION_STRING CONTAINER upload-dir PREFIX DIR
Prints one JSON line with what it did.
"""
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from azure.storage.blob import BlobServiceClient


def main() -> int:
    conn, container, verb, *args = sys.argv[1:]
    # The SDK's newest API version is ahead of Azurite; pin the one open-replit speaks.
    svc = BlobServiceClient.from_connection_string(conn, api_version="2025-01-05")
    c = svc.get_container_client(container)
    if verb == "read":
        name, expected = args
        data = c.download_blob(name).readall()
        ok = data.hex() == expected
        print(json.dumps({"ok": ok, "len": len(data)}))
        return 0 if ok else 1
    if verb == "write":
        name, content = args
        c.upload_blob(name, bytes.fromhex(content), overwrite=True)
        print(json.dumps({"ok": True}))
        return 0
    if verb == "bulk-write":
        prefix, count, size = args[0], int(args[1]), int(args[2])
        start = time.perf_counter()
        def put(i: int) -> None:
            c.upload_blob(f"{prefix}{i:04}", bytes([i % 251]) * size, overwrite=True)
        with ThreadPoolExecutor(max_workers=8) as ex:
            list(ex.map(put, range(count)))
        print(json.dumps({"ok": True, "seconds": time.perf_counter() - start}))
        return 0
    if verb == "upload-dir":
        # The same blob work as creating a project: every file once, plus one manifest.
        prefix, root = args
        import os
        files = []
        for d, _, names in os.walk(root):
            for n in names:
                p = os.path.join(d, n)
                files.append((os.path.relpath(p, root), open(p, "rb").read()))
        start = time.perf_counter()
        def put(item) -> None:
            c.upload_blob(f"{prefix}{item[0]}", item[1], overwrite=True)
        with ThreadPoolExecutor(max_workers=8) as ex:
            list(ex.map(put, files))
        c.upload_blob(f"{prefix}manifest.json", json.dumps([f for f, _ in files]).encode(), overwrite=True)
        print(json.dumps({"ok": True, "seconds": time.perf_counter() - start, "files": len(files)}))
        return 0
    if verb == "bulk-read":
        prefix = args[0]
        start = time.perf_counter()
        names = [b.name for b in c.list_blobs(name_starts_with=prefix)]
        def get(n: str) -> int:
            return len(c.download_blob(n).readall())
        with ThreadPoolExecutor(max_workers=8) as ex:
            total = sum(ex.map(get, names))
        print(json.dumps({"ok": True, "seconds": time.perf_counter() - start, "files": len(names), "bytes": total}))
        return 0
    print(json.dumps({"ok": False, "error": f"unknown verb {verb}"}))
    return 2


if __name__ == "__main__":
    sys.exit(main())
