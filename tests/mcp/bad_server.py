#!/usr/bin/env python3
"""A deliberately misbehaving MCP server over stdio (raw JSON-RPC lines, no SDK), for the
tests of the MCP client: it offers one tool, `echo`, and misbehaves on tools/call as told.

    bad_server.py ok              every call answers "call N : TEXT"
    bad_server.py exit-on-call N  the N-th call (1-based) exits the process without an answer
    bad_server.py hang            every call hangs (never answers)
    bad_server.py garbage         every call is answered with lines that are not JSON-RPC
    bad_server.py garbage-start   the handshake is answered with garbage

Logs go to stderr only; stdout carries the protocol.
"""
import json
import os
import sys
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
exit_on = int(sys.argv[2]) if mode == "exit-on-call" else 0
calls = 0

TOOLS = [{
    "name": "echo",
    "description": "Echo the text back, with the call's number in this process",
    "inputSchema": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    },
}]


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        print("bad_server: unreadable line", file=sys.stderr)
        continue
    method, rid = msg.get("method"), msg.get("id")
    if rid is None:
        continue  # a notification
    if method == "initialize":
        if mode == "garbage-start":
            sys.stdout.write("this is not json\n")
            sys.stdout.flush()
            continue
        version = msg.get("params", {}).get("protocolVersion", "2025-06-18")
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "bad_server", "version": "0"},
        }})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        calls += 1
        if mode == "exit-on-call" and calls == exit_on:
            print(f"bad_server: exiting on call {calls}", file=sys.stderr)
            os._exit(3)
        if mode == "hang":
            time.sleep(3600)
        if mode == "garbage":
            sys.stdout.write("}}{{ not json\n")
            sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": "nobody", "result": 7}) + "\n")
            sys.stdout.flush()
            continue
        text = msg.get("params", {}).get("arguments", {}).get("text", "")
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "content": [{"type": "text", "text": f"call {calls} : {text}"}],
            "isError": False,
        }})
    else:
        send({"jsonrpc": "2.0", "id": rid,
              "error": {"code": -32601, "message": f"no method {method}"}})
