#!/usr/bin/env python3
"""The rules of deploy/kubernetes/*.yaml that no JSON schema can express, and the Jobs' command
lines as local processes, for check.sh.

  invariants.py check DIR [--repo ROOT]   every rule below; exit 1 naming each one broken
  invariants.py self-test DIR [--repo ROOT]
                                          breaks the manifests in memory, one rule at a time,
                                          and exits 1 if a break goes unnoticed
  invariants.py local DIR --loadgen BIN --root DIR --start-at T --port P
                                          one line per process the manifests start, as the
                                          kubelet would start it (see `local_processes`)

Kubernetes rules (from the API server's Job validation, pkg/apis/batch/validation, and the
JobSpec field documentation of batch/v1): restartPolicy Never or OnFailure; Indexed needs
completions; backoffLimitPerIndex and maxFailedIndexes need Indexed; maxFailedIndexes needs
backoffLimitPerIndex and is at most completions; backoffLimitPerIndex needs restartPolicy Never;
podFailurePolicy needs restartPolicy Never and podReplacementPolicy Failed; a FailIndex rule
needs backoffLimitPerIndex; an onExitCodes rule names a container of the pod, has sorted unique
values and no 0 with In; a rule has exactly one of onExitCodes and onPodConditions. Also:
references resolve (volumes, ConfigMaps and their keys, claims) and every $(VAR) of a command
line names a variable of its container, since the kubelet leaves an unknown one as it is.

Rules of a sharded run (deploy/README.md): the generator Job is Indexed with parallelism =
completions = N, no retry per index and no failed index allowed, and its command is `run` with
`--shards N` and a part directory shard-$(JOB_COMPLETION_INDEX)-of-N; the server is one
attempt of `serve`; server and generators read the same scenario, and LOADGEN_START_AT from the
same ConfigMap key; TARGET is an IP literal equal to the Service's clusterIP and port, whose
targetPort is the server's listen port and whose selector picks the server's pods only; server
and generator pods repel each other and themselves per node; the results volume is
ReadWriteMany and the merge Job reads the directory holding the server's and the shards'
parts; every Job runs the same image; the scenario ConfigMap equals the repository's file.
"""

import argparse
import copy
import ipaddress
import re
import shlex
import sys
from pathlib import Path

import yaml

GENERATOR_JOB = "afterburner-gen"
SERVER_JOB = "afterburner-server"
MERGE_JOB = "afterburner-merge"
SERVICE = "afterburner-server"
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
# The Job controller adds this variable to every container of an Indexed Job's pods.
INDEX_VARIABLE = "JOB_COMPLETION_INDEX"
VARIABLE_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def load(directory):
    """Every document of DIR/*.yaml, keyed by (kind, name)."""
    objects = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                objects[(document["kind"], document["metadata"]["name"])] = document
    return objects


def jobs(objects):
    return {name: obj for (kind, name), obj in objects.items() if kind == "Job"}


def pod_spec(job):
    return job["spec"]["template"]["spec"]


def pod_labels(job):
    return job["spec"]["template"].get("metadata", {}).get("labels", {})


def container(job):
    """The Job's one container (the loadgen)."""
    return pod_spec(job)["containers"][0]


def argument_after(args, flag):
    """The value following FLAG in ARGS, or None."""
    for i, arg in enumerate(args[:-1]):
        if arg == flag:
            return args[i + 1]
    return None


def env_source(container_spec, name):
    """(ConfigMap, key) the variable NAME comes from, or None."""
    for entry in container_spec.get("env", []):
        if entry["name"] == name:
            ref = entry.get("valueFrom", {}).get("configMapKeyRef")
            return (ref["name"], ref["key"]) if ref else None
    return None


def selector_matches(selector, labels):
    """Whether a LabelSelector (matchLabels and matchExpressions) selects LABELS."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def kubernetes_rules(name, job, objects):
    """What the API server (or the kubelet, silently) would do otherwise, for one Job."""
    broken = []
    spec, pod = job["spec"], pod_spec(job)
    where = f"job/{name}"
    restart = pod.get("restartPolicy")
    indexed = spec.get("completionMode") == "Indexed"
    if restart not in ("Never", "OnFailure"):
        broken.append(f"{where}: restartPolicy must be Never or OnFailure, not {restart}")
    if indexed and "completions" not in spec:
        broken.append(f"{where}: completionMode Indexed needs completions")
    for field in ("backoffLimitPerIndex", "maxFailedIndexes"):
        if field in spec and not indexed:
            broken.append(f"{where}: {field} needs completionMode Indexed")
    if "maxFailedIndexes" in spec:
        if "backoffLimitPerIndex" not in spec:
            broken.append(f"{where}: maxFailedIndexes needs backoffLimitPerIndex")
        if spec["maxFailedIndexes"] > spec.get("completions", 0):
            broken.append(f"{where}: maxFailedIndexes must be at most completions")
    if "backoffLimitPerIndex" in spec and restart != "Never":
        broken.append(f"{where}: backoffLimitPerIndex needs restartPolicy Never")
    policy = spec.get("podFailurePolicy")
    if policy is not None:
        if restart != "Never":
            broken.append(f"{where}: podFailurePolicy needs restartPolicy Never")
        if spec.get("podReplacementPolicy") != "Failed":
            broken.append(f"{where}: podFailurePolicy needs podReplacementPolicy Failed")
        names = {c["name"] for c in pod["containers"] + pod.get("initContainers", [])}
        for i, rule in enumerate(policy.get("rules", [])):
            at = f"{where}: podFailurePolicy.rules[{i}]"
            if rule.get("action") == "FailIndex" and "backoffLimitPerIndex" not in spec:
                broken.append(f"{at}: FailIndex needs backoffLimitPerIndex")
            if ("onExitCodes" in rule) == bool(rule.get("onPodConditions")):
                broken.append(f"{at}: needs exactly one of onExitCodes and onPodConditions")
            codes = rule.get("onExitCodes")
            if codes:
                values = codes.get("values", [])
                if "containerName" in codes and codes["containerName"] not in names:
                    broken.append(f"{at}: containerName {codes['containerName']} is no container")
                if not values or values != sorted(set(values)):
                    broken.append(f"{at}: values must be sorted, unique and not empty")
                if codes.get("operator") == "In" and 0 in values:
                    broken.append(f"{at}: 0 is not allowed with operator In")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for c in pod["containers"]:
        defined = {e["name"] for e in c.get("env", [])}
        if indexed:
            defined.add(INDEX_VARIABLE)
        for mount in c.get("volumeMounts", []):
            if mount["name"] not in volumes:
                broken.append(f"{where}: volumeMount {mount['name']} names no volume")
        for entry in c.get("env", []):
            ref = entry.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                data = objects.get(("ConfigMap", ref["name"]), {}).get("data", {})
                if ref["key"] not in data:
                    broken.append(
                        f"{where}: env {entry['name']}: "
                        f"no key {ref['key']} in configmap/{ref['name']}"
                    )
        for arg in c.get("command", []) + c.get("args", []):
            for variable in VARIABLE_REFERENCE.findall(arg):
                if variable not in defined:
                    broken.append(
                        f"{where}: `{arg}`: $({variable}) is not in the container's env "
                        "(the kubelet would pass it on unexpanded)"
                    )
    for volume in volumes.values():
        if "configMap" in volume and ("ConfigMap", volume["configMap"]["name"]) not in objects:
            broken.append(
                f"{where}: volume {volume['name']}: no configmap/{volume['configMap']['name']}"
            )
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        if claim and ("PersistentVolumeClaim", claim) not in objects:
            broken.append(f"{where}: volume {volume['name']}: no persistentvolumeclaim/{claim}")
    return broken


def mount_of(job, path):
    """(mountPath, volume) under which PATH lies in the Job's container, or (None, None)."""
    volumes = {v["name"]: v for v in pod_spec(job).get("volumes", [])}
    best = (None, None)
    for mount in container(job).get("volumeMounts", []):
        root = mount["mountPath"].rstrip("/")
        if (path == root or path.startswith(root + "/")) and (
            best[0] is None or len(root) > len(best[0])
        ):
            best = (root, volumes.get(mount["name"]))
    return best


def sharded_run_rules(objects, repo):
    """What makes the parts one run."""
    broken = []
    all_jobs = jobs(objects)
    missing = [f"job/{n}" for n in (GENERATOR_JOB, SERVER_JOB, MERGE_JOB) if n not in all_jobs]
    if ("Service", SERVICE) not in objects:
        missing.append(f"service/{SERVICE}")
    if missing:
        return [f"missing: {', '.join(missing)}"]
    gen, server, merge = all_jobs[GENERATOR_JOB], all_jobs[SERVER_JOB], all_jobs[MERGE_JOB]
    spec = gen["spec"]
    count = spec.get("completions")
    if spec.get("completionMode") != "Indexed":
        broken.append(f"job/{GENERATOR_JOB}: completionMode must be Indexed")
    if spec.get("parallelism") != count:
        broken.append(
            f"job/{GENERATOR_JOB}: parallelism {spec.get('parallelism')} != completions {count}: "
            "every shard must run at once"
        )
    if spec.get("backoffLimitPerIndex") != 0 or spec.get("maxFailedIndexes") != 0:
        broken.append(f"job/{GENERATOR_JOB}: backoffLimitPerIndex and maxFailedIndexes must be 0")
    if "podFailurePolicy" not in spec or pod_spec(gen).get("restartPolicy") != "Never":
        broken.append(f"job/{GENERATOR_JOB}: needs a podFailurePolicy and restartPolicy Never")
    for name, job in ((SERVER_JOB, server), (MERGE_JOB, merge)):
        if job["spec"].get("backoffLimit") != 0 or job["spec"].get("completions", 1) != 1:
            broken.append(f"job/{name}: one attempt only: completions 1, backoffLimit 0")

    gen_args, server_args = container(gen).get("args", []), container(server).get("args", [])
    merge_args = container(merge).get("args", [])
    if gen_args[:1] != ["run"] or "--shard" in gen_args:
        broken.append(f"job/{GENERATOR_JOB}: args must be `run SCENARIO --shards N ...`")
    if argument_after(gen_args, "--shards") != str(count):
        broken.append(
            f"job/{GENERATOR_JOB}: --shards {argument_after(gen_args, '--shards')} "
            f"!= completions {count}"
        )
    if server_args[:1] != ["serve"] or merge_args[:1] != ["merge"]:
        broken.append("the server runs `serve`, the merge `merge`")

    # One scenario, one start, one target.
    scenario = gen_args[1] if len(gen_args) > 1 else None
    if len(server_args) < 2 or server_args[1] != scenario:
        broken.append(f"the server's scenario {server_args[1:2]} is not the generators' {scenario}")
    for name, job in ((SERVER_JOB, server), (GENERATOR_JOB, gen)):
        root, volume = mount_of(job, scenario or "")
        if not volume or "configMap" not in volume:
            broken.append(f"job/{name}: {scenario} is not in a mounted ConfigMap")
            continue
        map_name = volume["configMap"]["name"]
        key = scenario[len(root) + 1 :]
        data = objects.get(("ConfigMap", map_name), {}).get("data", {})
        if key not in data:
            broken.append(f"job/{name}: configmap/{map_name} has no {key}")
        elif repo is not None and (Path(repo) / "scenarios" / key).is_file():
            if data[key] != (Path(repo) / "scenarios" / key).read_text():
                broken.append(f"configmap/{map_name}: {key} differs from scenarios/{key}")
    start_sources = {n: env_source(container(j), "LOADGEN_START_AT") for n, j in all_jobs.items()}
    if None in start_sources.values() or len(set(start_sources.values())) != 1:
        broken.append(
            f"LOADGEN_START_AT must come from one ConfigMap key in every Job: {start_sources}"
        )
    target_source = env_source(container(gen), "LOADGEN_TARGET")
    if target_source is None:
        broken.append(f"job/{GENERATOR_JOB}: LOADGEN_TARGET must come from a ConfigMap")
    elif "--target" in gen_args:
        broken.append(f"job/{GENERATOR_JOB}: --target in args would override the ConfigMap's")
    else:
        target = (
            objects.get(("ConfigMap", target_source[0]), {})
            .get("data", {})
            .get(target_source[1], "")
        )
        broken += target_rules(target, objects[("Service", SERVICE)], server, gen)

    # The parts land where the merge reads them.
    gen_dir, server_dir = argument_after(gen_args, "--run-dir"), argument_after(
        server_args, "--run-dir"
    )
    merge_dir = merge_args[1] if len(merge_args) > 1 else None
    if gen_dir != f"{merge_dir}/shard-$({INDEX_VARIABLE})-of-{count}":
        broken.append(
            f"the shards' --run-dir {gen_dir} is not "
            f"{merge_dir}/shard-$({INDEX_VARIABLE})-of-{count}"
        )
    if server_dir != f"{merge_dir}/server":
        broken.append(f"the server's --run-dir {server_dir} is not {merge_dir}/server")
    claims = set()
    for name, job in all_jobs.items():
        _, volume = mount_of(job, merge_dir or "")
        claims.add((volume or {}).get("persistentVolumeClaim", {}).get("claimName"))
    if None in claims or len(claims) != 1:
        broken.append(f"{merge_dir} must be on one PersistentVolumeClaim in every Job: {claims}")
    else:
        claim = objects.get(("PersistentVolumeClaim", claims.pop()), {})
        if "ReadWriteMany" not in claim.get("spec", {}).get("accessModes", []):
            broken.append(
                "the results claim must be ReadWriteMany: the parts run on different nodes"
            )
    if len({container(j)["image"] for j in all_jobs.values()}) != 1:
        broken.append("every Job must run the same image")

    # Apart: one part per node.
    for name, job in ((SERVER_JOB, server), (GENERATOR_JOB, gen)):
        terms = (
            pod_spec(job)
            .get("affinity", {})
            .get("podAntiAffinity", {})
            .get("requiredDuringSchedulingIgnoredDuringExecution", [])
        )
        if not any(
            t.get("topologyKey") == HOSTNAME_TOPOLOGY
            and selector_matches(t.get("labelSelector", {}), pod_labels(server))
            and selector_matches(t.get("labelSelector", {}), pod_labels(gen))
            for t in terms
        ):
            broken.append(
                f"job/{name}: needs a required podAntiAffinity term on {HOSTNAME_TOPOLOGY} "
                "selecting both the server's and the generators' pods"
            )
    return broken


def target_rules(target, service, server, gen):
    """TARGET is the Service's fixed address, and the Service leads to the server only."""
    broken = []
    match = re.fullmatch(r"http://([0-9.]+|\[[0-9a-fA-F:.]+\]):([0-9]+)/", target)
    if not match:
        return [f"TARGET {target!r} must be http://IP:PORT/ (the loadgen resolves no names)"]
    try:
        address = ipaddress.ip_address(match.group(1).strip("[]"))
    except ValueError:
        return [f"TARGET {target!r}: {match.group(1)} is not an IP address"]
    port = int(match.group(2))
    spec = service["spec"]
    if str(address) != spec.get("clusterIP"):
        broken.append(
            f"TARGET {target} is not service/{SERVICE}'s clusterIP {spec.get('clusterIP')}"
        )
    listen = argument_after(container(server).get("args", []), "--listen") or ""
    listen_port = listen.rsplit(":", 1)[-1]
    if not any(
        p["port"] == port and str(p.get("targetPort", p["port"])) == listen_port
        for p in spec["ports"]
    ):
        broken.append(
            f"service/{SERVICE} has no port {port} leading to the server's --listen {listen}"
        )
    selector = {"matchLabels": spec.get("selector", {})}
    if not spec.get("selector") or not selector_matches(selector, pod_labels(server)):
        broken.append(f"service/{SERVICE}'s selector does not pick the server's pods")
    if selector_matches(selector, pod_labels(gen)):
        broken.append(f"service/{SERVICE}'s selector also picks the generators' pods")
    return broken


def violations(objects, repo=None):
    broken = []
    for name, job in jobs(objects).items():
        broken += kubernetes_rules(name, job, objects)
    return broken + sharded_run_rules(objects, repo)


def mutations():
    """(what, message, change): each change (made in place) breaks one rule, and the report
    must name it with a line containing `message`."""

    def gen(o):
        return o[("Job", GENERATOR_JOB)]

    def gen_args(o):
        return container(gen(o))["args"]

    def set_arg(args, flag, value):
        args[args.index(flag) + 1] = value

    def drop(mapping, *keys):
        for key in keys:
            mapping.pop(key)

    return [
        (
            "parallelism below completions",
            "parallelism 2 != completions",
            lambda o: gen(o)["spec"].update(parallelism=2),
        ),
        (
            "completions dropped",
            "completionMode Indexed needs completions",
            lambda o: drop(gen(o)["spec"], "completions"),
        ),
        (
            "the server listening on another port",
            "has no port 8080 leading to the server's --listen",
            lambda o: set_arg(
                container(o[("Job", SERVER_JOB)])["args"], "--listen", "0.0.0.0:9090"
            ),
        ),
        (
            "--shards not completions",
            "--shards 4 != completions",
            lambda o: set_arg(gen_args(o), "--shards", "4"),
        ),
        (
            "completionMode dropped",
            "needs completionMode Indexed",
            lambda o: drop(gen(o)["spec"], "completionMode"),
        ),
        (
            "restartPolicy OnFailure",
            "needs restartPolicy Never",
            lambda o: pod_spec(gen(o)).update(restartPolicy="OnFailure"),
        ),
        (
            "podReplacementPolicy TerminatingOrFailed",
            "needs podReplacementPolicy Failed",
            lambda o: gen(o)["spec"].update(podReplacementPolicy="TerminatingOrFailed"),
        ),
        (
            "backoffLimitPerIndex dropped (FailIndex stays)",
            "FailIndex needs backoffLimitPerIndex",
            lambda o: drop(gen(o)["spec"], "backoffLimitPerIndex", "maxFailedIndexes"),
        ),
        (
            "maxFailedIndexes above completions",
            "maxFailedIndexes must be at most completions",
            lambda o: gen(o)["spec"].update(maxFailedIndexes=9),
        ),
        (
            "exit code 0 with In",
            "0 is not allowed with operator In",
            lambda o: gen(o)["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"].update(
                values=[0, 2]
            ),
        ),
        (
            "containerName of no container",
            "containerName x is no container",
            lambda o: gen(o)["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"].update(
                containerName="x"
            ),
        ),
        (
            "a misspelt $(JOB_COMPLETION_INDX)",
            "$(JOB_COMPLETION_INDX) is not in the container's env",
            lambda o: set_arg(
                gen_args(o),
                "--run-dir",
                "/results/$(LOADGEN_START_AT)/shard-$(JOB_COMPLETION_INDX)-of-3",
            ),
        ),
        (
            "another scenario for the server",
            "is not the generators'",
            lambda o: container(o[("Job", SERVER_JOB)])["args"].__setitem__(
                1, "/scenario/other.toml"
            ),
        ),
        (
            "START_AT from another key",
            "LOADGEN_START_AT must come from one ConfigMap key",
            lambda o: container(o[("Job", SERVER_JOB)])["env"][0]["valueFrom"][
                "configMapKeyRef"
            ].update(key="TARGET"),
        ),
        (
            "clusterIP not TARGET's",
            "is not service/afterburner-server's clusterIP",
            lambda o: o[("Service", SERVICE)]["spec"].update(clusterIP="10.96.0.81"),
        ),
        (
            "TARGET a host name",
            "resolves no names",
            lambda o: o[("ConfigMap", "afterburner-run")]["data"].update(
                TARGET="http://afterburner-server:8080/"
            ),
        ),
        (
            "anti-affinity per zone",
            "needs a required podAntiAffinity term",
            lambda o: pod_spec(gen(o))["affinity"]["podAntiAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"
            ][0].update(topologyKey="topology.kubernetes.io/zone"),
        ),
        (
            "results volume ReadWriteOnce",
            "must be ReadWriteMany",
            lambda o: o[("PersistentVolumeClaim", "afterburner-results")]["spec"].update(
                accessModes=["ReadWriteOnce"]
            ),
        ),
        (
            "merge reads another directory",
            "is not /results/shard-",
            lambda o: container(o[("Job", MERGE_JOB)])["args"].__setitem__(1, "/results"),
        ),
        (
            "scenario ConfigMap drifted",
            "differs from scenarios/quick.toml",
            lambda o: o[("ConfigMap", "afterburner-scenario")]["data"].update(
                {
                    k: v + "# drift\n"
                    for k, v in o[("ConfigMap", "afterburner-scenario")]["data"].items()
                }
            ),
        ),
    ]


def expand(text, env):
    """The kubelet's expansion of a command-line argument: $(NAME) becomes NAME's value when the
    container defines it and stays as written otherwise; $$ is a literal $."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        match = VARIABLE_REFERENCE.match(text, i)
        if match and match.group(1) in env:
            out.append(env[match.group(1)])
            i = match.end()
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def local_processes(objects, loadgen, root, start_at, port):
    """(role, name, result.json expected, shell command) for the server, each generator pod and
    the merge, as the kubelet would start them, with these substitutions only: the image's
    loadgen is LOADGEN; START_AT and TARGET are START_AT and http://127.0.0.1:PORT/; the
    server listens on 127.0.0.1:PORT; each mount is a directory under ROOT (a ConfigMap's
    files written out, one directory per claim shared by all pods, one per pod and emptyDir)."""
    root = Path(root)
    overrides = {"LOADGEN_START_AT": str(start_at), "LOADGEN_TARGET": f"http://127.0.0.1:{port}/"}
    all_jobs = jobs(objects)
    order = [(SERVER_JOB, "server"), (GENERATOR_JOB, "generator"), (MERGE_JOB, "merge")]
    lines = []
    for job_name, role in order:
        job = all_jobs[job_name]
        indexed = job["spec"].get("completionMode") == "Indexed"
        for index in range(job["spec"]["completions"] if indexed else 1):
            pod = f"{job_name}-{index}" if indexed else job_name
            c = container(job)
            env = {}
            for entry in c.get("env", []):
                ref = entry.get("valueFrom", {}).get("configMapKeyRef")
                value = (
                    entry.get("value")
                    if ref is None
                    else objects[("ConfigMap", ref["name"])]["data"][ref["key"]]
                )
                env[entry["name"]] = overrides.get(entry["name"], value)
            if indexed:
                env[INDEX_VARIABLE] = str(index)
            args = [expand(a, env) for a in c.get("args", [])]
            if "--listen" in args:
                args[args.index("--listen") + 1] = f"127.0.0.1:{port}"
            mounts = []
            volumes = {v["name"]: v for v in pod_spec(job).get("volumes", [])}
            for mount in c.get("volumeMounts", []):
                volume = volumes[mount["name"]]
                if "configMap" in volume:
                    local = root / "configmap" / volume["configMap"]["name"]
                    local.mkdir(parents=True, exist_ok=True)
                    for key, text in objects[("ConfigMap", volume["configMap"]["name"])][
                        "data"
                    ].items():
                        (local / key).write_text(text)
                elif "persistentVolumeClaim" in volume:
                    local = root / "claim" / volume["persistentVolumeClaim"]["claimName"]
                else:
                    local = root / "pod" / pod / volume["name"]
                local.mkdir(parents=True, exist_ok=True)
                mounts.append((mount["mountPath"].rstrip("/"), str(local)))
            # Longest mount path first: a nested mount wins.
            mounts.sort(key=lambda m: -len(m[0]))

            def local_path(arg):
                for mount_path, local in mounts:
                    if arg == mount_path or arg.startswith(mount_path + "/"):
                        return local + arg[len(mount_path) :]
                return arg

            args = [local_path(a) for a in args]
            result = {
                "server": lambda: argument_after(args, "--run-dir"),
                "generator": lambda: argument_after(args, "--run-dir"),
                "merge": lambda: args[1],
            }[role]() + "/result.json"
            workdir = root / "pod" / pod
            workdir.mkdir(parents=True, exist_ok=True)
            command = ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={workdir}"]
            command += [f"{k}={v}" for k, v in env.items()] + [loadgen] + args
            lines.append(
                (role, pod, result, f"cd {shlex.quote(str(workdir))} && exec {shlex.join(command)}")
            )
    return lines


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check")
    check.add_argument("directory")
    check.add_argument(
        "--repo", help="the repository, to compare the scenario ConfigMap with scenarios/"
    )
    selftest = sub.add_parser("self-test")
    selftest.add_argument("directory")
    selftest.add_argument("--repo", help="as for check")
    local = sub.add_parser("local")
    local.add_argument("directory")
    for flag in ("--loadgen", "--root", "--start-at", "--port"):
        local.add_argument(flag, required=True)
    args = parser.parse_args()
    objects = load(args.directory)

    if args.command == "check":
        broken = violations(objects, args.repo)
        for line in broken:
            print(f"BROKEN {line}")
        if not broken:
            print(f"OK {len(objects)} objects, {len(jobs(objects))} Jobs: every rule holds")
        return 1 if broken else 0
    if args.command == "self-test":
        if violations(objects, args.repo):
            print("the manifests break rules already: run `check` first")
            return 1
        unnoticed = 0
        for what, message, change in mutations():
            broken_objects = copy.deepcopy(objects)
            change(broken_objects)
            found = [line for line in violations(broken_objects, args.repo) if message in line]
            print(
                f"{'caught' if found else 'MISSED'}: {what}" + (f" -> {found[0]}" if found else "")
            )
            unnoticed += not found
        return 1 if unnoticed else 0
    for role, pod, result, command in local_processes(
        objects, args.loadgen, args.root, args.start_at, args.port
    ):
        print(f"{role}\t{pod}\t{result}\t{command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
