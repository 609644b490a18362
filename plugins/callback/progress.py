"""The scripts' output: one line per role as it starts, what changed, what the playbook says
(debug messages, one per loop item with its label, assert success messages, warnings,
retries), failures in full, then the recap and a table of the roles' times. `-v` (or more)
gives Ansible's whole default stream instead.

scripts/lib.sh makes it the stdout callback of the scripts' playbook runs
(ANSIBLE_STDOUT_CALLBACK, unless already set); ansible-playbook run by hand, and molecule,
keep Ansible's default output.
"""

from __future__ import annotations

DOCUMENTATION = """
    name: progress
    type: stdout
    short_description: progress lines, changes and failures, then a table of the roles' times
    description:
      - One line per role as it starts, one per changed task, debug messages, warnings and
        failures as the default callback shows them; the recap, then each role's seconds and
        changed tasks. With -v or more, the default callback's whole output.
    extends_documentation_fragment:
      - default_callback
      - result_format_callback
    requirements:
      - set as stdout callback (ANSIBLE_STDOUT_CALLBACK=progress)
"""

import time
from collections import defaultdict
from typing import Any

from ansible import constants as C
from ansible.plugins.callback.default import CallbackModule as DefaultCallback

DEBUG_ACTIONS = {"debug", "ansible.builtin.debug", "ansible.legacy.debug"}
# An assert's success_msg is a message too (its default text is not).
ASSERT_ACTIONS = {"assert", "ansible.builtin.assert", "ansible.legacy.assert"}
DEFAULT_ASSERT_MSG = "All assertions passed"


class CallbackModule(DefaultCallback):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "progress"

    def __init__(self) -> None:
        super().__init__()
        self._started = time.monotonic()
        self._role: str | None = None
        self._role_started = self._started
        # Per role, in the order they ran: [seconds, changed tasks].
        self._roles: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0])

    # -- helpers ------------------------------------------------------------------------------
    def _full(self) -> bool:
        return self._display.verbosity >= 1

    def _line(self, text: str, color: str | None = None) -> None:
        self._display.display(text, color=color)

    def _message(self, task: Any, outcome: dict[str, Any], prefix: str = "") -> bool:
        """Print a debug's or an assert's message; whether the result was one."""
        if "msg" not in outcome or task.action not in DEBUG_ACTIONS | ASSERT_ACTIONS:
            return False
        message = outcome["msg"]
        # A quiet assert says nothing, as in the default output.
        if task.action in ASSERT_ACTIONS and (
            message == DEFAULT_ASSERT_MSG or not outcome.get("_ansible_verbose_always")
        ):
            return True
        if prefix:
            self._line(f"      {prefix}")
        lines = message if isinstance(message, list) else str(message).splitlines()
        for line in lines:
            self._line(f"      {line}")
        return True

    def _close_role(self) -> None:
        if self._role is not None:
            self._roles[self._role][0] += time.monotonic() - self._role_started

    @staticmethod
    def _role_of(task: Any) -> str:
        """The play's role the task runs under: roles it includes (container,
        service_image...) count as part of it."""
        name, node = None, task
        while node is not None:
            role = getattr(node, "_role", None)
            if role is not None:
                name = role.get_name()
            node = getattr(node, "_parent", None)
        return name or "(playbook)"

    # -- plays and tasks ----------------------------------------------------------------------
    def v2_playbook_on_play_start(self, play: Any) -> None:
        if self._full():
            super().v2_playbook_on_play_start(play)
            return
        self._play = play
        self._line(f"play: {play.get_name().strip() or 'unnamed'}", C.COLOR_HIGHLIGHT)

    def _task_start(self, task: Any, prefix: str | None = None) -> None:
        if self._full():
            super()._task_start(task, prefix)
            return
        if prefix is not None:
            self._task_type_cache[task._uuid] = prefix
        self._last_task_name = task.get_name().strip()
        role = self._role_of(task)
        if role != self._role:
            self._close_role()
            self._role, self._role_started = role, time.monotonic()
            self._roles[role]  # listed in the order the roles ran, even with nothing changed
            self._line(f"  [{time.monotonic() - self._started:7.1f} s] {role}")

    def v2_playbook_on_include(self, included_file: Any) -> None:
        if self._full():
            super().v2_playbook_on_include(included_file)

    # -- results ------------------------------------------------------------------------------
    def v2_runner_on_ok(self, result: Any) -> None:
        if self._full():
            super().v2_runner_on_ok(result)
            return
        self._handle_warnings_and_exception(result)
        task, outcome = result.task, result.result
        if self._message(task, outcome):
            return
        if "results" in outcome and task.action in DEBUG_ACTIONS | ASSERT_ACTIONS:
            return  # a loop's items were printed one by one
        if outcome.get("changed", False):
            if self._role is not None:
                self._roles[self._role][1] += 1
            self._line(f"      changed: {(task.name or task.get_name()).strip()}", C.COLOR_CHANGED)

    def v2_runner_item_on_ok(self, result: Any) -> None:
        if self._full():
            super().v2_runner_item_on_ok(result)
            return
        label = self._get_item_label(result.result)
        self._message(result.task, result.result, prefix=f"(item={label})")

    def v2_runner_on_skipped(self, result: Any) -> None:
        if self._full():
            super().v2_runner_on_skipped(result)

    def v2_runner_item_on_skipped(self, result: Any) -> None:
        if self._full():
            super().v2_runner_item_on_skipped(result)

    # -- the end ------------------------------------------------------------------------------
    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._close_role()
        self._role = None
        super().v2_playbook_on_stats(stats)
        if self._full() or not self._roles:
            return
        self._line(f"{'role':<28}{'seconds':>9}{'changed':>9}")
        for role, (seconds, changed) in self._roles.items():
            self._line(f"{role:<28}{seconds:9.1f}{int(changed):9d}")
        self._line(f"{'total':<28}{time.monotonic() - self._started:9.1f}")
