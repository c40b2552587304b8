"""Put on PYTHONPATH by `audit run --runner transformers -- CMD`: adds the auditor evidence callback to every
transformers Trainer the command builds, with no change to the user's code.

Python imports `sitecustomize` at start-up; this one chains to any sitecustomize it shadows, then installs a
one-shot import hook that patches `Trainer.__init__` when (and only if) `transformers.trainer` is imported, so a
process that never trains pays nothing. Imports nothing heavy itself.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _chain() -> None:
    """Run the sitecustomize this file shadows, if the environment has one."""
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


def _patch(trainer_cls: type) -> None:
    original = vars(trainer_cls)["__init__"]

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        root = os.environ.get("AUDITOR_PACKAGE_ROOT")
        if root and root not in sys.path:
            sys.path.append(root)  # appended: never shadows the user's own modules
        from runners.transformers.callback import AuditorCallback

        if not any(isinstance(c, AuditorCallback) for c in self.callback_handler.callbacks):
            self.add_callback(AuditorCallback())

    setattr(trainer_cls, "__init__", __init__)  # noqa: B010


class _TrainerHook(importlib.abc.MetaPathFinder):
    """Finds transformers.trainer through the other finders and patches the Trainer after it executes."""

    def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
        if name != "transformers.trainer":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module):  # type: ignore[no-untyped-def]
            exec_module(module)
            _patch(module.Trainer)

        setattr(loader, "exec_module", exec_and_patch)  # noqa: B010
        return spec


_chain()
if os.environ.get("AUDITOR_RUN_DIR"):
    sys.meta_path.insert(0, _TrainerHook())
