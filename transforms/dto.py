"""Entity → DTO: privacy applied here, once, for every reader.

See docs/architecture.md#secrets-and-privacy.
"""

from __future__ import annotations

import uuid

from contracts.dto import (
    AuthorDTO,
    EducationDTO,
    FeedItemDTO,
    ProfileDTO,
    SkillDTO,
    WorkExperienceDTO,
)
from transforms.entities import FeedPost, Profile


def profile_dto(profile: Profile, viewer_id: uuid.UUID | None, connected: bool) -> ProfileDTO:
    """The profile as `viewer_id` may see it.

    A private profile's headline, location, work history and education are shown
    only to its owner and accepted connections; name and skills are always shown.
    """
    own = viewer_id == profile.user_id
    full = own or connected or profile.visibility == "public"
    return ProfileDTO(
        user_id=profile.user_id,
        full_name=profile.full_name,
        headline=profile.headline if full else None,
        location=profile.location if full else None,
        visibility=profile.visibility,
        is_own_profile=own,
        work_experience=tuple(
            WorkExperienceDTO(w.id, w.company_name, w.title, w.start_date, w.end_date)
            for w in profile.work_experience
        )
        if full
        else (),
        education=tuple(
            EducationDTO(e.id, e.school_name, e.degree, e.start_date, e.end_date)
            for e in profile.education
        )
        if full
        else (),
        skills=tuple(SkillDTO(s.id, s.skill_name) for s in profile.skills),
    )


def feed_item_dto(post: FeedPost) -> FeedItemDTO:
    return FeedItemDTO(
        id=post.id,
        text_content=post.text_content,
        created_at=post.created_at,
        author=AuthorDTO(post.author_id, post.author_name),
    )
