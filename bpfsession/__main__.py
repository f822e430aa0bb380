from bpfsession.cli import main

raise SystemExit(main())
