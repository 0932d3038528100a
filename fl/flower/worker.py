"""A long-lived ClientApp process for one SuperNode started with ``--isolation process``.

Flower 1.42's default SuperNode (``--isolation subprocess``) runs a SuperExec that starts a new
``flwr-clientapp`` process for every message: each round, each node pays a fresh Python that
imports flwr and torch, installs the FAB, imports the App and reloads its data set (about 2 s
of CPU per node per round on this project's CI machine). With ``--isolation process`` the
SuperNode starts no executor and waits for one to claim its tasks on its Runtime API; this
process is that executor, and it stays up:

1. it claims the node's next ClientApp task (``AcquireTask``, polled after waits that start at 5 ms
   and double up to ``--poll`` seconds, ``fl.flower.waits.Backoff``);
2. it runs the task with Flower's own steps (``flwr.supernode.runtime.run_clientapp``'s
   ``pull_task_input``, ``push_message``, ``push_task_output``, a task heartbeat): the message,
   context and FAB come from the SuperNode, the reply and the context go back to it;
3. the ClientApp is loaded once, from the FAB the first task brings (installed into FLWR_HOME
   and imported from there, as ``flwr-clientapp`` does), and kept with its module state (the
   App caches its data set and partition, ``fl.flower.app``), so a round costs the training.

A task of another FAB (a second App on the same SuperNode) is handed to a stock
``flwr-clientapp --token ...`` process, Flower's own path. The process exits when its SuperNode
is gone, on SIGTERM / SIGINT, or when the Runtime API stays unreachable.

Every Flower module it uses is internal (about 20 of them): each is imported through the version
gate (``fl/flower/gate.py``), which refuses another Flower release with the public way out,
``--isolation subprocess`` (``fl.flower.deployment`` falls back to it by itself).

Run it as a script (``python fl/flower/worker.py ...``), not as ``-m fl.flower.worker``:
the package ``fl`` must be imported from the FAB, not from wherever this file lives.
"""
from __future__ import annotations

import sys

if __name__ == "__main__":  # run as a script: its folder (fl/) must not shadow top-level modules
    import os

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse
import importlib.util
import os
import signal
import subprocess
import threading
import time
from logging import ERROR, INFO

#: the waits between two AcquireTask polls while the node has no task: from the first, doubling
#: up to the cap (``fl.flower.waits.Backoff``; Flower's SuperExec waits 1 s each time)
DEFAULT_POLL_FIRST_S, DEFAULT_POLL_S = 0.005, 0.2
#: modules imported at start (this project's App needs them; the App itself comes with the FAB)
PRELOAD = ("numpy", "torch")
#: first and longest wait before asking the SuperNode again for a message object it does not
#: hold yet (the SuperNode hands out the task while it still downloads the message's objects
#: from the SuperLink; ``flwr-clientapp`` waits 1 s, then 2 s, ... up to 10 s)
OBJECT_BACKOFF_S, OBJECT_BACKOFF_CAP_S = 0.005, 0.1


#: what the version gate names when it refuses another Flower release
WHAT, INSTEAD = "the long-lived ClientApp process", "start the SuperNodes with --isolation subprocess"


def _load_gate():
    """``fl/flower/gate.py`` by path: this script must not import the package ``fl`` (see above)."""
    name = "metatrading_flower_gate"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                          "gate.py"))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def _load_waits():
    """``fl/flower/waits.py`` by path (see ``_load_gate``)."""
    return _load_gate().sibling("waits")


def _flwr(module: str):
    """An internal Flower module, through the version gate."""
    return _load_gate().internal(module, what=WHAT, instead=INSTEAD)


def _runtime_client(address: str, insecure: bool, root_certificates: bytes | None, interceptors: list):
    retry = _flwr("flwr.supercore.retry")
    return _flwr("flwr.supercore.runtime").RuntimeHttpClient.from_server_address(
        server_address=address, insecure=insecure, root_certificates=root_certificates, interceptors=interceptors,
        retry_invoker=retry.make_simple_http_retry_invoker())


class Worker:
    """Claims and runs the ClientApp tasks of one SuperNode, one at a time."""

    def __init__(self, runtime_api_address: str, insecure: bool, root_certificates_path: str | None,
                 poll_s: float, poll_first_s: float = DEFAULT_POLL_FIRST_S) -> None:
        validate_and_resolve_root_certificates = _flwr("flwr.supercore.tls").validate_and_resolve_root_certificates
        self.address = runtime_api_address
        self.insecure = insecure
        self.root_certificates_path = root_certificates_path
        self.root_certificates = validate_and_resolve_root_certificates(root_certificates_path, insecure)
        self.backoff = _load_waits().Backoff(min(poll_first_s, poll_s), poll_s)
        self.fab_hash: str | None = None  # the FAB whose ClientApp this process holds
        self.app = None
        self.tasks = 0

    # -- the loop -------------------------------------------------------------------------

    def serve(self) -> None:
        log = _flwr("flwr.supercore").log
        interceptors = _flwr("flwr.supercore.interceptors")
        client = _runtime_client(self.address, self.insecure, self.root_certificates,
                                 [interceptors.RuntimeVersionHttpInterceptor(component_name="SuperExec")])
        request = _flwr("flwr.proto.runtime_pb2").AcquireTaskRequest(
            supported_task_types=[_flwr("flwr.supercore.constant").TaskType.CLIENT_APP])
        log(INFO, "ClientApp worker polling %s for ClientApp tasks", self.address)
        try:
            while True:
                res = client.AcquireTask(request)
                if res.HasField("task") and res.token:
                    if self.fab_hash is not None and res.task.fab_hash and res.task.fab_hash != self.fab_hash:
                        self._hand_over(res.token)
                    else:
                        self.run_task(res.token)
                    self.backoff.reset()
                    continue  # look for the next task at once
                self.backoff.wait()
        finally:
            client.close()

    def _hand_over(self, token: str) -> None:
        """Flower's own path for a task of another FAB: a ``flwr-clientapp`` process."""
        argv = ["flwr-clientapp", "--runtime-api-address", self.address, "--token", token]
        argv += ["--insecure"] if self.insecure else (
            ["--root-certificates", self.root_certificates_path] if self.root_certificates_path else [])
        argv += ["--parent-pid", str(os.getpid())]
        subprocess.Popen(argv)

    # -- one task -------------------------------------------------------------------------

    def run_task(self, token: str) -> None:
        """One ClientApp task, as ``flwr-clientapp`` runs it, in this process."""
        from flwr.app import Message

        Error = _flwr("flwr.app.error").Error
        LoadClientAppError = _flwr("flwr.clientapp.client_app").LoadClientAppError
        constant = _flwr("flwr.common.constant")
        ErrorCode, SubStatus = constant.ErrorCode, constant.SubStatus
        log = _flwr("flwr.supercore").log
        interceptors = _flwr("flwr.supercore.interceptors")
        runtime = _flwr("flwr.supernode.runtime.run_clientapp")
        push_message, push_task_output = runtime.push_message, runtime.push_task_output

        client = _runtime_client(self.address, self.insecure, self.root_certificates,
                                 [interceptors.RuntimeVersionHttpInterceptor(component_name="flwr-clientapp"),
                                  interceptors.RuntimeTokenHttpInterceptor(token)])
        heartbeat = _flwr("flwr.supercore.heartbeat").HeartbeatSender(self._heartbeat_fn(client))
        message = context = reply = None
        sub_status, details = SubStatus.FAILED, "ClientApp task failed due to unknown reason"
        try:
            heartbeat.start()
            t0 = time.perf_counter()
            message, context, run, fab = _pull_task_input(client)
            t1 = time.perf_counter()
            app = self._client_app(run, fab)
            reply = app(message=message, context=context)
            log(INFO, "%s message: pulled in %.3f s, ran in %.3f s", message.metadata.message_type, t1 - t0,
                time.perf_counter() - t1)
            sub_status, details = SubStatus.COMPLETED, ""
        except Exception as ex:  # noqa: BLE001 - reported to the server as Flower does
            code = ErrorCode.LOAD_CLIENT_APP_EXCEPTION if isinstance(ex, LoadClientAppError) \
                else ErrorCode.CLIENT_APP_RAISED_EXCEPTION
            reason = (f"{type(ex)}:<'{ex}'>" if code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
                      else "An exception was raised when attempting to load `ClientApp`")
            log(ERROR, "ClientApp raised an exception", exc_info=ex)
            details = reason
            if message is not None:
                reply = Message(Error(code=code, reason=reason), reply_to=message)
        finally:
            try:
                if reply is not None and context is not None:
                    push_message(client, reply, context)
            except Exception as ex:  # noqa: BLE001
                log(ERROR, "Failed to push reply message", exc_info=ex)
            push_task_output(client=client, context=context, sub_status=sub_status, details=details)
            if heartbeat.is_running:
                heartbeat.stop()
            client.close()
            self.tasks += 1

    @staticmethod
    def _heartbeat_fn(client):
        """Flower's task heartbeat, except that a refused one does not end this process."""
        import httpx

        req = _flwr("flwr.proto.runtime_pb2").SendTaskHeartbeatRequest()

        def fn() -> bool:
            try:
                client.SendTaskHeartbeat(req)
            except httpx.TransportError:
                return False
            except httpx.HTTPStatusError as err:
                if err.response.status_code in (503, 504):
                    return False
                raise
            return True

        return fn

    def _client_app(self, run, fab):
        """The ClientApp of ``fab``: installed and imported for the first task, then reused."""
        if self.app is not None and fab.hash_str == self.fab_hash:
            return self.app
        if self.app is not None:  # no fab_hash on the task: only known now
            raise RuntimeError(f"this ClientApp worker holds FAB {self.fab_hash[:12]}, the task brings "
                               f"{fab.hash_str[:12]} (restart the worker to switch Apps)")
        _flwr("flwr.cli.install").install_from_fab(fab.content, skip_prompt=True)
        self.app = _flwr("flwr.clientapp.utils").get_load_client_app_fn(default_app_ref="", app_path=None,
                                                                         multi_app=True)(
            run.fab_id, run.fab_version, fab.hash_str)
        self.fab_hash = fab.hash_str
        return self.app


def _pull_task_input(client):
    """``(message, context, run, fab)`` of the claimed task, from the SuperNode's Runtime API.

    The same requests as Flower's ``run_clientapp.pull_task_input`` (PullTaskInput, then
    PullMessages and the message's objects), except the wait between two asks for an object
    the SuperNode is still downloading: ``OBJECT_BACKOFF_S`` instead of 1 s.
    """
    from flwr.app import Message

    serde = _flwr("flwr.common.serde")
    runtime_pb2 = _flwr("flwr.proto.runtime_pb2")
    protobuf_utils = _flwr("flwr.supercore.inflatable.inflatable_protobuf_utils")
    TaskIdentity = _flwr("flwr.supercore.task_identity").TaskIdentity

    task_input = client.PullTaskInput(runtime_pb2.PullTaskInputRequest())
    context = serde.context_from_proto(task_input.context)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = (
        task_input.task_id, task_input.run.run_id, task_input.context.node_id)
    pulled = client.PullMessages(runtime_pb2.PullAppMessagesRequest())
    if not pulled.messages_list:
        raise RuntimeError("the SuperNode handed out a task without a message")
    tree = pulled.message_object_trees[0]
    node = _flwr("flwr.proto.node_pb2").Node(node_id=context.node_id)
    message = _flwr("flwr.supercore.inflatable.inflatable_utils").pull_and_inflate_object_from_tree(
        tree, protobuf_utils.make_pull_object_fn_protobuf(client.PullObject, node, context.run_id),
        protobuf_utils.make_confirm_message_received_fn_protobuf(client.ConfirmMessageReceived, node,
                                                                 context.run_id),
        return_type=Message, initial_backoff=OBJECT_BACKOFF_S, backoff_cap=OBJECT_BACKOFF_CAP_S)
    message.metadata.__dict__["_message_id"] = tree.object_id  # a deflated message has no id of its own
    return message, context, serde.run_from_proto(task_input.run), serde.fab_from_proto(task_input.fab)


def _watch(pid: int) -> None:
    """Stop this process (as SIGTERM would) once ``pid`` (its SuperNode) is gone."""
    def watch() -> None:
        while True:
            time.sleep(0.2)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            except PermissionError:
                pass

    threading.Thread(target=watch, name="supernode-watch", daemon=True).start()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Long-lived ClientApp process for a SuperNode run with "
                                            "--isolation process")
    p.add_argument("--runtime-api-address", required=True, help="the SuperNode's Runtime API (its --host:--port)")
    tls = p.add_mutually_exclusive_group(required=True)
    tls.add_argument("--insecure", action="store_true", help="plain HTTP to the Runtime API (loopback only)")
    tls.add_argument("--root-certificates", help="CA certificate of the Runtime API's TLS certificate")
    p.add_argument("--supernode-pid", type=int, help="exit when this process (the SuperNode) is gone")
    p.add_argument("--poll", type=float, default=DEFAULT_POLL_S,
                   help=f"longest wait in seconds between task polls while idle (default {DEFAULT_POLL_S}; "
                        f"the waits start at {DEFAULT_POLL_FIRST_S} s and double up to it)")
    p.add_argument("--poll-first", type=float, default=DEFAULT_POLL_FIRST_S,
                   help=f"first wait in seconds after a task (default {DEFAULT_POLL_FIRST_S}; "
                        f"--poll-first 1 --poll 1 polls as Flower's SuperExec does)")
    args = p.parse_args(argv)
    if not (0.001 <= args.poll <= 60):
        p.error(f"--poll: must be in [0.001, 60] seconds, got {args.poll}")
    if not (0.001 <= args.poll_first <= args.poll):
        p.error(f"--poll-first: must be in [0.001, --poll = {args.poll}] seconds, got {args.poll_first}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    if args.supernode_pid is not None:
        _watch(args.supernode_pid)
    try:  # the gate first: another Flower release stops here with the public way out
        log = _flwr("flwr.supercore").log
        _flwr("flwr.supercore.logger").update_console_handler(timestamps=True, colored=False)  # log file: no colours
    except _load_gate().FlowerVersionError as err:
        print(f"worker.py: {err}", file=sys.stderr)
        return 2
    for module in PRELOAD:  # the App's heavy dependencies, imported before its first message
        __import__(module)
    worker = Worker(args.runtime_api_address, args.insecure, args.root_certificates, args.poll, args.poll_first)
    try:
        worker.serve()
    except KeyboardInterrupt:
        pass
    finally:
        log(INFO, "ClientApp worker stops after %d task(s) in this process", worker.tasks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
