"""The gateway supervises the llama.cpp engine it started: a dead engine is restarted."""

import os
import re
import signal
import time

import openai


def engine_pids(gw) -> list[int]:
    text = gw.process.stdout_path.read_text(errors="replace") + gw.process.stderr_path.read_text(errors="replace")
    return [int(p) for p in re.findall(r"backend=local-1 pid=(\d+).*managed engine started", text)]


def test_killed_engine_is_restarted(gw, client: openai.OpenAI):
    pids = engine_pids(gw)
    assert pids, "the gateway did not log the managed engine's start:\n" + gw.log_tail(20)
    os.kill(pids[-1], signal.SIGKILL)

    # The supervisor starts a new process (a new pid in the log) and the model answers again.
    deadline = time.monotonic() + 90
    while len(engine_pids(gw)) <= len(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(engine_pids(gw)) > len(pids), "no restart logged:\n" + gw.log_tail(20)
    while True:
        try:
            reply = client.chat.completions.create(
                model="smollm2:135m", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, timeout=20
            )
            break
        except openai.APIStatusError as e:  # 502 while the new engine loads its model
            assert e.status_code in (502, 503), e
            assert time.monotonic() < deadline, "the restarted engine never answered"
            time.sleep(0.5)
        except openai.APIConnectionError:
            assert time.monotonic() < deadline, "the gateway stopped answering"
            time.sleep(0.5)
    assert reply.choices[0].message.content is not None
