"""Run the ``>>>`` examples of one docs block as the asyncio REPL would, in a fresh process.

``python _pycon.py FILE`` reads a JSON list of sources from FILE and prints a JSON list: the
output of each (what the REPL would show, a raised exception as its last traceback line).
Top-level ``await`` works, as in ``python -m asyncio``.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import json
import sys
import traceback


def main() -> None:
    with open(sys.argv[1]) as f:
        sources: list[str] = json.load(f)
    loop = asyncio.new_event_loop()
    namespace: dict[str, object] = {"__name__": "__main__"}
    outputs: list[str] = []
    for source in sources:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                code = compile(
                    source + "\n", "<docs>", "single", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
                )
                result = eval(code, namespace)
                if code.co_flags & inspect.CO_COROUTINE:
                    loop.run_until_complete(result)
            except Exception as exc:
                print("Traceback (most recent call last):")
                print("  ...")
                print(traceback.format_exception_only(exc)[-1].rstrip())
        outputs.append(out.getvalue())
    loop.close()
    print(json.dumps(outputs))


if __name__ == "__main__":
    main()
