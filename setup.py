# The node library lives in the top-level folder ``nodes/`` but installs as ``flowmm.nodes``
# (no generic top-level name in site-packages). setuptools' declarative config cannot
# discover packages under a remapped folder, hence these few lines.
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["flowmm", "flowmm.*"])
    + ["flowmm.nodes"]
    + [f"flowmm.nodes.{p}" for p in find_packages("nodes")]
    + ["flowmm.scenarios"],
    # the synthetic market's scenarios ship from graphs/scenarios/, their one home
    package_dir={"flowmm.nodes": "nodes", "flowmm.scenarios": "graphs/scenarios"},
)
