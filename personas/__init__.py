"""Personas: the customers and advisors reps practise with, as validated YAML.

```python
company = load_company()
personas = PersonaLibrary.from_dir(company)
persona = personas.get("margaret-okafor")
```
"""

from personas.library import (
    SHIPPED_PERSONA_DIR,
    PersonaError,
    PersonaLibrary,
    PersonaNotFoundError,
    load_persona,
    parse_persona,
)
from personas.schema import (
    DIFFICULTIES,
    EMOTIONS,
    METER_MAX,
    Difficulty,
    Emotion,
    HeldBack,
    Persona,
    VoiceSpec,
    emotion_for,
)

__all__ = [
    "DIFFICULTIES",
    "EMOTIONS",
    "METER_MAX",
    "SHIPPED_PERSONA_DIR",
    "Difficulty",
    "Emotion",
    "HeldBack",
    "Persona",
    "PersonaError",
    "PersonaLibrary",
    "PersonaNotFoundError",
    "VoiceSpec",
    "emotion_for",
    "load_persona",
    "parse_persona",
]
