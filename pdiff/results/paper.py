"""What the Prompt Diffuser paper reports (its Tables 1–3 and the ablation; docs/method.md), as data, and the
settings it used.

The full paper text was not available to us: these figures come from published summaries; "n/r" cells are
absent here (None). Raw returns, mean ± std over 3 seeds, K* = 5.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reported:
    mean: float
    std: float | None = None
    approximate: bool = False  # the paper gives the figure in words ("about −33.5")

    def text(self) -> str:
        text = f"{self.mean:.1f}" if self.std is None else f"{self.mean:.1f} ± {self.std:.1f}"
        return f"≈ {text}" if self.approximate else text


# Our family name → the paper's column (Meta-World: the paper used reach-v2, we use reach-v3).
PAPER_FAMILIES = {
    "cheetah-dir": "Cheetah-dir",
    "cheetah-vel": "Cheetah-vel",
    "ant-dir": "Ant-dir",
    "metaworld-reach": "MW reach-v2",
}

# Table 1, per method (our method names) and family; "average" is the paper's Average column.
TABLE1: dict[str, dict[str, Reported]] = {
    "prompt-diffuser": {
        "cheetah-dir": Reported(945.3, 7.2),
        "cheetah-vel": Reported(-35.3, 2.4),
        "ant-dir": Reported(432.1, 6.7),
        "metaworld-reach": Reported(555.7, 6.8),
        "average": Reported(474.4),
    },
    "ptdt": {
        "cheetah-dir": Reported(941.5, 3.2),
        "cheetah-vel": Reported(-39.5, 3.7),
        "ant-dir": Reported(427.9, 4.3),
        "metaworld-reach": Reported(472.5, 29.0),
        "average": Reported(450.3),
    },
    "full-ft": {"average": Reported(450.0)},
    "soft-prompt": {"average": Reported(431.6)},
    "adaptor": {"average": Reported(412.7)},
    "full-data": {"average": Reported(496.6)},
}

TABLE1_TUNABLE = {"prompt-diffuser": "0.17M (1.24 %)", "ptdt": "0.24K (0.0018 %)", "full-ft": "all"}

TABLE2_NOTE = (
    "Paper (Table 2, Cheetah-vel by its scale; other cells n/r): Prompt Diffuser stays at about −33.5 with "
    "expert, medium and random few-shot data; Prompt-Tuning DT (ptdt) degrades to −90.4 (with which data, "
    "n/r). A `(paper)` row's expert cell is the paper's Table 1 figure, the same setting as our expert "
    "column."
)
# Table 2, per method, family and data kind. The expert cell repeats Table 1's figure (expert few-shot data
# is Table 1's setting); medium and random are the "about −33.5" the paper states in words.
TABLE2: dict[str, dict[str, dict[str, Reported]]] = {
    "prompt-diffuser": {
        "cheetah-vel": {
            "expert": TABLE1["prompt-diffuser"]["cheetah-vel"],
            "medium": Reported(-33.5, approximate=True),
            "random": Reported(-33.5, approximate=True),
        }
    }
}

# Table 3: Ant-dir out of distribution (its OOD directions are n/r; ant-dir-ood is our split), per setting:
# the methods the paper names, and its best baseline (the zero-shot one is not named).
TABLE3_FAMILY = "ant-dir-ood"
TABLE3: dict[str, dict[str, Reported]] = {
    "few-shot": {"prompt-diffuser": Reported(546.8), "ptdt": Reported(540.8)},
    "zero-shot": {"prompt-diffuser": Reported(329.2, 21.8)},
}
TABLE3_BEST_BASELINE: dict[str, tuple[str, Reported]] = {
    "few-shot": ("ptdt", Reported(540.8)),
    "zero-shot": ("method n/r", Reported(52.7)),
}
TABLE3_NOTE = (
    "Paper (Table 3, Ant-dir out of distribution; its OOD goal directions and shot count are n/r): few-shot, "
    "Prompt Diffuser 546.8 against 540.8 for Prompt-Tuning DT; zero-shot, 329.2 ± 21.8 against 52.7 for the "
    "best baseline."
)

ABLATION_NOTE = (
    "Paper (guidance ablation figure; absolute values n/r): bars relative to L_DM only (`none`); the "
    "projection (`project`) is best in all four environments; L_DM only is already strong on "
    "Cheetah-dir/vel, guidance helps most on Meta-World reach and Ant-dir."
)
# The paper's names of the ablation variants, by our --guidance rule.
ABLATION_NAMES = {
    "none": "paper's ab:dm, L_DM only",
    "plm-only": "paper's ab:dt, L_PLM only",
    "sum": "paper's ab:all, plain sum",
    "project": "the paper's method, projection",
}

# The paper's setting, to be stated beside ours.
PAPER_SETTING = {
    "simulators": "gym 0.18 / mujoco-py 2.0 (MuJoCo 2.0), vendored Meta-World v2 (reach-v2)",
    "seeds": "3",
    "eval episodes per test task": "n/r (Prompt-DT: 50)",
    "few-shot data": "n/r (expert, 3 seeds)",
    "Prompt-DT size": "≈13.5M parameters implied by its percentages (the default Prompt-DT has 0.86M)",
    "Meta-World horizon": "n/r (upstream 500; the reported returns fit about 100 steps)",
    "prompt length K*": "5",
}

# How our simulators differ, per family (docs/families.md).
SIMULATOR_DIFFERENCES = {
    "cheetah-dir": "HalfCheetah-v5 (gymnasium, MuJoCo 3) with ctrl cost 0.05 and the 20-dim observation; "
    "paper: HalfCheetah on mujoco-py 2.0",
    "cheetah-vel": "HalfCheetah-v5 (gymnasium, MuJoCo 3) with ctrl cost 0.05 and the 20-dim observation; "
    "paper: HalfCheetah on mujoco-py 2.0",
    "ant-dir": "Ant-v5 (27-dim obs; real contact forces; survive bonus only while healthy); paper: Ant on "
    "mujoco-py 2.0",
    "metaworld": "Meta-World 3.1.1 `-v3` task (same reward; seed-1 goals frozen, not guaranteed to equal "
    "v2's); paper: vendored Meta-World v2",
}


def simulator_difference(family: str) -> str:
    key = "metaworld" if family.startswith("metaworld-") else family.removesuffix("-ood")  # OOD: its base's
    return SIMULATOR_DIFFERENCES.get(key, "no paper counterpart")
