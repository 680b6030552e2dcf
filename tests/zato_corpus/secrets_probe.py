# -*- coding: utf-8 -*-

# Walks everything a service reaches through its attributes and returns every string found,
# so a test can check that no server secret is among them.
from zato.server.service import Service

SKIP_TYPES = ('Redis', 'module', 'function', 'builtin_function_or_method', 'method')


class Probe(Service):
    name = 'demo.secrets.probe'

    def handle(self):
        seen, strings, todo = set(), set(), [self]
        while todo and len(seen) < 20000:
            obj = todo.pop()
            if id(obj) in seen or type(obj).__name__ in SKIP_TYPES:
                continue
            seen.add(id(obj))
            if isinstance(obj, str):
                strings.add(obj)
                continue
            if isinstance(obj, bytes):
                strings.add(obj.decode('utf-8', 'replace'))
                continue
            if isinstance(obj, dict):
                todo.extend(obj.keys())
                todo.extend(obj.values())
                continue
            if isinstance(obj, (list, tuple, set, frozenset)):
                todo.extend(obj)
                continue
            for name in dir(type(obj)):
                if isinstance(getattr(type(obj), name, None), property):
                    try:
                        todo.append(getattr(obj, name))
                    except Exception:
                        pass
            todo.extend(getattr(obj, '__dict__', {}).values())
            for slot in getattr(type(obj), '__slots__', ()):
                todo.append(getattr(obj, slot, None))
        self.response.payload = {'strings': sorted(strings), 'objects': len(seen)}
