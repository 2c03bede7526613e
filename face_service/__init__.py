"""The face service's import root.

The code lives in the design card's folders, `src/domain`, `src/adapters` and `src/app`; the three
links here make them `face_service.domain`, `face_service.adapters` and `face_service.app`, one
namespace for the installed wheel, the editable install, mypy and import-linter alike (see
docs/architecture.md, "One import root").
"""
