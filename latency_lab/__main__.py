from latency_lab.cli import main

raise SystemExit(main())
