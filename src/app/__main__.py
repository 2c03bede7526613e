from face_service.app.cli import main

raise SystemExit(main())
