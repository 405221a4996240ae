from wavediff.cli import main

raise SystemExit(main())
