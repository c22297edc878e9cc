import http.server
import json
import threading

import pytest

from bzzz.p2p import capabilities as caps


@pytest.fixture
def fake_ollama():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/api/tags":
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps({"models": [{"name": "llama3:latest"}, {"name": "qwen2:7b"},
                                          {"bogus": 1}, "nonsense"]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_ollama_models_become_capabilities(fake_ollama):
    assert caps.ollama_models(fake_ollama) == ["ollama", "ollama:llama3", "ollama:qwen2:7b"]


def test_unreachable_ollama_is_no_capability():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert caps.ollama_models(f"http://127.0.0.1:{port}", timeout=0.2) == []


def test_tools_detected_from_path():
    found = caps.detect_tools(which=lambda exe: "/usr/bin/" + exe if exe in ("git", "sh") else None)
    assert found == ["shell", "git"]


def test_configured_plus_detected_without_duplicates(fake_ollama):
    result = caps.detect(["gpu", "shell"], True, fake_ollama)
    assert result[:2] == ["gpu", "shell"] and result.count("shell") == 1
    assert "ollama:llama3" in result
    assert caps.detect(["gpu"], False) == ["gpu"]
