from synack.cli import main

raise SystemExit(main())
