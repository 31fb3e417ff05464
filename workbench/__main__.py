"""`python -m workbench ...` (and `accelerate launch -m workbench run SUITE.yaml`)."""
from workbench.cli import main

main()
