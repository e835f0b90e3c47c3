#!/usr/bin/env python3
"""Start to ready: spawn `vouch serve ARGS...` and poll http://HEALTH/readyz every 0.5 ms
until it answers 200. Prints the elapsed milliseconds, then stops the process (SIGTERM).

usage: startup.py HEALTH_ADDR VOUCH_BINARY ARGS...
"""
import signal, socket, subprocess, sys, time

health = sys.argv[1]
host, port = health.rsplit(":", 1)
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    while True:
        if proc.poll() is not None:
            sys.exit(f"vouch exited with {proc.returncode} before it was ready")
        try:
            with socket.create_connection((host, int(port)), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.0\r\nHost: x\r\n\r\n")
                if b" 200 " in s.recv(64):
                    break
        except OSError:
            pass
        if time.perf_counter() - started > 10:
            sys.exit("not ready within 10 s")
        time.sleep(0.0005)
    print(f"{(time.perf_counter() - started) * 1000:.1f}")
finally:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
