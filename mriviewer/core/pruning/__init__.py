"""Pruning unrolled networks (PUN): at initialisation (PUN-IT), during training (PUN-WT) and
after training (PUN-AT), on top of ``torch.nn.utils.prune``; density and FLOP accounts.

Density is the kept fraction of the prunable weights everywhere in this API.
"""

from mriviewer.core.pruning.accounting import flop_report, parameter_report
from mriviewer.core.pruning.export import (
    describe_pruning,
    export_for_save,
    load_pruned,
    pruning_record,
    read_masks,
)
from mriviewer.core.pruning.magnitude import (
    at_round_densities,
    magnitude_prune,
    prune_after_training,
    rewind,
    wt_density,
)
from mriviewer.core.pruning.masks import (
    apply_masks,
    conv_weight_names,
    current_masks,
    density_report,
    global_topk,
    kept_count,
    magnitude_masks,
    make_permanent,
    select_prunable,
)
from mriviewer.core.pruning.pun_it import SearchResult, pun_it_search
from mriviewer.core.pruning.settings import METHOD_NAMES, PruneSettings, check_density


def __getattr__(name: str):
    """The training callback (:mod:`mriviewer.core.pruning.hook`, which imports the training
    package) is loaded on first use, so reading pruned models stays light."""
    if name in ("TrainerPruning", "initial_state"):
        from mriviewer.core.pruning import hook

        return getattr(hook, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "METHOD_NAMES",
    "PruneSettings",
    "SearchResult",
    "TrainerPruning",
    "apply_masks",
    "at_round_densities",
    "check_density",
    "conv_weight_names",
    "current_masks",
    "density_report",
    "describe_pruning",
    "export_for_save",
    "flop_report",
    "global_topk",
    "initial_state",
    "kept_count",
    "load_pruned",
    "magnitude_masks",
    "magnitude_prune",
    "make_permanent",
    "parameter_report",
    "prune_after_training",
    "pruning_record",
    "pun_it_search",
    "read_masks",
    "rewind",
    "select_prunable",
    "wt_density",
]
