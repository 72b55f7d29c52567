"""The stack's standard tags, declared once and put on every taggable resource by a transformation.

Every resource of the stack carries `environment`, `owner` and `project`. Instead of each component
rebuilding that dict, `__main__.py` registers `standard_tags_transformation` once, before the first
resource, and Pulumi runs it on every resource the program declares (components' children
included): a resource whose type takes `tags` gets the standard ones merged under its own. The
components add only what they know and the stack does not: `data-classification`, a segment, a
workload, a `Name`.

Why a transformation and not the AWS provider's `default_tags`: the provider merges `default_tags`
into `tagsAll`, an output, and leaves `tags`, the input, as the program wrote it. The policy pack
and the tests read inputs (a preview has no outputs), and rules decide on tags there
(`tags.environment` marks a production log group or table, `ztai:segment` and `ztai:egress` a
network segment): only tags in the inputs are seen where they are checked.

What the transformation cannot reach are the tags a resource hands to what AWS creates from it
later (a launch template's instances and volumes, Image Builder's build instances and AMIs): those
are values inside a resource's inputs, not resources, so the components that declare them merge
`standard_tags(environment, owner)` into them themselves.

A component used outside this program (a test, another stack) carries only its own tags unless
that program registers the transformation too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

PROJECT = "zero-trust-ai"
STANDARD_TAG_KEYS: tuple[str, ...] = ("environment", "owner", "project")
# Auto Scaling groups take tags as a list of {key, value, propagate_at_launch}.
_GROUP = "aws:autoscaling/group:Group"


def standard_tags(environment: str, owner: str) -> dict[str, str]:
    """The tags every resource of the stack carries."""
    return {"environment": environment, "owner": owner, "project": PROJECT}


def standard_tags_transformation(environment: str, owner: str) -> pulumi.ResourceTransformation:
    """A transformation adding `standard_tags(environment, owner)` to every resource that takes
    tags; a tag the resource sets itself keeps its value."""
    standard = standard_tags(environment, owner)

    def transformation(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        # Only resources whose type takes tags have the key (pulumi-aws sets it, None when unset);
        # components and providers have no such input.
        if not isinstance(args.resource, pulumi.CustomResource) or "tags" not in args.props:
            return None
        if args.opts.id is not None:
            return None  # read by its id (`Role.get`): another stack's resource, tagged there
        tags = args.props["tags"]
        merged = _group_tags(standard, tags) if args.type_ == _GROUP else _merge(standard, tags)
        return pulumi.ResourceTransformationResult(props={**args.props, "tags": merged}, opts=args.opts)

    return transformation


def register_standard_tags(environment: str, owner: str) -> None:
    """Tag every resource the program declares from now on (call before the first one)."""
    # A stack transformation runs in this process, before a resource is registered, so the offline
    # preview's mock engine sees its result too; `register_resource_transform` runs in the engine
    # through a callback server, which the mocks do not have.
    pulumi.runtime.register_stack_transformation(standard_tags_transformation(environment, owner))


def _merge(standard: Mapping[str, str], tags: Any) -> Any:
    if tags is None:
        return dict(standard)
    if isinstance(tags, Mapping):
        return {**standard, **tags}
    # Tags known only at deploy (an Output): merged once known.
    return pulumi.Output.from_input(tags).apply(lambda known: {**standard, **(known or {})})


def _group_tags(standard: Mapping[str, str], tags: Any) -> list[Any]:
    """An Auto Scaling group's tag list with the standard tags first, not propagated at launch (the
    launch template tags the instances); a key the group lists itself keeps its entry."""
    given = list(tags or [])
    keys = {_group_tag_key(tag) for tag in given}
    added = [aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=False)
             for key, value in standard.items() if key not in keys]
    return [*added, *given]


def _group_tag_key(tag: Any) -> Any:
    if isinstance(tag, Mapping):
        return tag.get("key")
    return getattr(tag, "key", None)
