"""Releases and staged deploys: canary → primary → full, with health gates, rollback and alerts."""

# Regions as in the design: `ewr` places orders; every other region runs the same release on paper.
PRIMARY = "ewr"
CANARY = ("lhr", "nrt")
FULL = ("ord", "fra", "sin", "bom")
REGIONS = (*CANARY, PRIMARY, *FULL)
ROLES = {"ewr": "primary", "lhr": "scout", "nrt": "scout", "sin": "scout",
         "fra": "secondary", "ord": "secondary", "bom": "secondary"}


class DeployError(ValueError):
    """Bad deploy input (an unknown release or region): one line naming it."""
