"""Audio transcription (issue 17) through the official `openai` SDK.

No Whisper weights can be installed on these machines: the transcription model is served by
EngineSim's transcription route, which is SIMULATED (a fixed sentence naming the audio's
duration; no speech recognition). What is real: the multipart upload, the 25 MB limit, the
duration the gateway reads from the file's header, the per-started-minute billing in the
ledger and /v1/usage, the grant, the errors.
"""

import io
import json
import math
import struct
import wave
from pathlib import Path

import httpx
import openai
import pytest

from conftest import run_cli

MODEL = "sim-whisper"
AUDIO_PRICE_NANO = 10_000_000  # 0.01 € per started minute
FIXTURES = Path(__file__).resolve().parents[2] / "Tests" / "AudioTests" / "Fixtures"


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(bytes(128 + int(100 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate))))
    return buf.getvalue()


@pytest.fixture(scope="module")
def tenant(gw):
    made = run_cli(gw.bin, ["tenant", "create", "audio-e2e", "--tier", "monthly", "--config", str(gw.config_path), "--json"], gw.data_dir)
    assert made.returncode == 0, made.stderr
    keys = {}
    for name, extra in (("full", []), ("chat-only", ["--endpoints", "chat"])):
        k = run_cli(gw.bin, ["key", "create", "--tenant", "audio-e2e", "--name", name, *extra, "--config", str(gw.config_path), "--json"], gw.data_dir)
        assert k.returncode == 0, k.stderr
        keys[name] = json.loads(k.stdout)["key"]
    return {"id": json.loads(made.stdout)["id"], "key": keys["full"], "chat_only": keys["chat-only"]}


@pytest.fixture()
def sdk(gw, tenant):
    c = openai.OpenAI(base_url=gw.base_url, api_key=tenant["key"], max_retries=0, timeout=120.0)
    yield c
    c.close()


def test_json_transcription_billed_per_started_minute(gw, sdk):
    raw = sdk.audio.transcriptions.with_raw_response.create(model=MODEL, file=("hello.wav", wav_bytes(1.5), "audio/wav"))
    t = raw.parse()
    assert t.text.startswith("Simulated transcription (EngineSim") and "1500 ms of WAV" in t.text
    assert t.usage.type == "duration" and t.usage.seconds == 2  # whole seconds, rounded up
    assert (t.model_extra or {}).get("simulated") is True
    row = gw.wait_request_row(raw.headers["x-request-id"])
    assert row["endpoint"] == "audio.transcriptions" and row["model"] == MODEL and row["status"] == 200
    assert row["audio_ms"] == 1500
    assert row["cost_nano"] == AUDIO_PRICE_NANO  # one started minute
    assert row["energy_uwh"] == round(0.05 * 1e6 * 1.5 / 60)  # 0.05 Wh per minute of audio
    assert raw.headers["x-llmaas-backend"] == "sim/sim-1"


def test_every_response_format(sdk):
    audio = wav_bytes(2.0)
    text = sdk.audio.transcriptions.create(model=MODEL, file=("a.wav", audio), response_format="text")
    assert isinstance(text, str) and "2000 ms of WAV" in text
    srt = sdk.audio.transcriptions.create(model=MODEL, file=("a.wav", audio), response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,000\n")
    vtt = sdk.audio.transcriptions.create(model=MODEL, file=("a.wav", audio), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n")
    verbose = sdk.audio.transcriptions.create(model=MODEL, file=("a.wav", audio), response_format="verbose_json",
                                              language="de", temperature=0.2, prompt="A short tone.")
    assert verbose.duration == 2.0 and verbose.language == "de"
    assert verbose.segments and verbose.segments[0].end == 2.0
    plain = sdk.audio.transcriptions.create(model=MODEL, file=("a.wav", audio), response_format="json")
    assert plain.text == verbose.text


@pytest.mark.parametrize("name,container", [("tone.mp3", "MP3"), ("tone-cbr.mp3", "MP3"), ("tone.flac", "FLAC"),
                                            ("tone.ogg", "OGG"), ("tone.opus", "OGG"), ("tone.m4a", "M4A")])
def test_each_container_is_read(gw, sdk, name, container):
    raw = sdk.audio.transcriptions.with_raw_response.create(model=MODEL, file=(name, (FIXTURES / name).read_bytes()))
    assert f"of {container} audio" in raw.parse().text
    row = gw.wait_request_row(raw.headers["x-request-id"])
    assert 950 <= row["audio_ms"] <= 1200 and row["cost_nano"] == AUDIO_PRICE_NANO


def test_long_audio_bills_every_started_minute_and_shows_in_usage(gw, sdk, tenant):
    raw = sdk.audio.transcriptions.with_raw_response.create(model=MODEL, file=("long.wav", wav_bytes(61.0, rate=4000)))
    row = gw.wait_request_row(raw.headers["x-request-id"])
    assert row["audio_ms"] == 61_000 and row["cost_nano"] == 2 * AUDIO_PRICE_NANO
    usage = httpx.get(f"{gw.url}/v1/usage", params={"group_by": "endpoint"},
                      headers={"Authorization": f"Bearer {tenant['key']}"}, timeout=30).json()
    group = {g["endpoint"]: g for g in usage["data"]}["audio.transcriptions"]
    rows = gw.request_rows("tenant_id = ? AND endpoint = 'audio.transcriptions' AND status = 200", (tenant["id"],))
    assert group["requests"] == len(rows)
    assert group["audio_seconds"] == pytest.approx(sum(r["audio_ms"] for r in rows) / 1000)
    assert group["cost_nano_eur"] == sum(r["cost_nano"] for r in rows)
    assert group["cost_nano_eur"] == AUDIO_PRICE_NANO * sum(max(1, math.ceil(r["audio_ms"] / 60000)) for r in rows)


def test_unreadable_audio_is_a_400_naming_the_problem(gw, sdk):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.audio.transcriptions.create(model=MODEL, file=("notes.wav", b"these are not audio bytes at all"))
    err = e.value.body
    assert err["param"] == "file" and err["code"] == "invalid_audio"
    assert "not a recognised audio container" in err["message"] and "notes.wav" in err["message"]
    # A WAV header without its fmt chunk: the message says which chunk.
    broken = b"RIFF" + struct.pack("<I", 12) + b"WAVE" + b"data" + struct.pack("<I", 0)
    with pytest.raises(openai.BadRequestError) as e:
        sdk.audio.transcriptions.create(model=MODEL, file=("broken.wav", broken))
    assert "'fmt '" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        sdk.audio.transcriptions.create(model=MODEL, file=("a.wav", wav_bytes(0.5)), response_format="mp3")
    assert e.value.body["param"] == "response_format"


def test_too_large_is_413(sdk):
    big = wav_bytes(0.1) + bytes(25 * 1024 * 1024)
    with pytest.raises(openai.APIStatusError) as e:
        sdk.audio.transcriptions.create(model=MODEL, file=("big.wav", big))
    assert e.value.status_code == 413
    assert "25 MB" in e.value.body["message"] or "limit" in e.value.body["message"]


def test_no_grant_and_wrong_model(gw, sdk, tenant):
    chat_only = openai.OpenAI(base_url=gw.base_url, api_key=tenant["chat_only"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as e:
        chat_only.audio.transcriptions.create(model=MODEL, file=("a.wav", wav_bytes(0.5)))
    assert "'audio'" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        sdk.audio.transcriptions.create(model="sim-chat", file=("a.wav", wav_bytes(0.5)))
    assert e.value.body["param"] == "model" and "transcription" in e.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        sdk.audio.transcriptions.create(model="no-such-whisper", file=("a.wav", wav_bytes(0.5)))
