"""The models SBC is checked on (tests, benchmark), with the proper priors SBC needs.

SBC draws its truths from the prior, so the prior must simulate plausible surveys: blavaan's
vague defaults (loadings ~ normal(0, 10), intercepts ~ normal(0, 32)) simulate absurd ones. Two
more traps, both seen in this package's SBC runs: under std.lv a first loading drawn near zero
leaves the factor's sign unidentified (a bimodal posterior that one chain cannot cover), and a
residual SD drawn near zero gives the latent-score likelihood a funnel short chains do not
cross. The priors below, and the bundled models' ``models/<name>.sbc_priors.yaml``, keep
loadings positive and residual SDs away from zero.
"""

from __future__ import annotations

import json
from pathlib import Path

from bayes_sor.spec.partable import read_prior_file

#: One factor with four items mediating between two single-indicator latents; ``{scale}`` is
#: the loadings' halfnormal scale.
MEDIATION = """---
priors: {{loadings: "halfnormal({scale})", regressions: "normal(0,1)", intercepts: "normal(0,1)",
         variances: "gamma(4,8)[sd]"}}
---
F =~ y1 + y2 + y3 + y4
X =~ x
Y =~ z
x ~~ 0*x
z ~~ 0*z
F ~ a*X
Y ~ b*F + c*X
ind := a*b
"""

#: Two factors with three items each and a path between them: issue 9's "small model".
TWO_FACTOR = """---
priors: {loadings: "halfnormal(1)", regressions: "normal(0,1)", intercepts: "normal(0,1)",
         variances: "gamma(4,8)[sd]"}
---
F =~ y1 + y2 + y3
G =~ y4 + y5 + y6
G ~ b*F
"""


def mediation_model(loading_scale: float = 1.0) -> str:
    """The small mediation model with loadings ~ halfnormal(``loading_scale``)."""
    return MEDIATION.format(scale=f"{loading_scale:g}")


def study_a_model(root: Path) -> str:
    """``models/impulse_buying.lav`` with its SBC-ready priors
    (``models/impulse_buying.sbc_priors.yaml``) in its header."""
    models = root / "models"
    priors = read_prior_file(models / "impulse_buying.sbc_priors.yaml")
    text = (models / "impulse_buying.lav").read_text()
    # JSON is YAML's flow style: the header reads the mapping as written
    return text.replace("---\n", f"---\npriors: {json.dumps(priors)}\n", 1)
