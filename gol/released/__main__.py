"""``python -m gol.released``: print docs/fidelity.md."""

from gol.released.markdown import main

raise SystemExit(main())
