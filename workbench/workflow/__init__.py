"""The creative workflow on top of the one data line: the Composer (`compose`), the Elements library
(`elements`), best-of-N ranking (`bestofn`) and the agent that routes, plans and refines (`agent`).
Speech synthesis lives in `workbench.speech`. Import the submodule you need; nothing here loads
heavy dependencies at import time."""
